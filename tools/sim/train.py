#!/usr/bin/env python3
"""Trains the reaching task's SmolVLA with lerobot 0.6.1's own training (`lerobot-train`) on
the expert's episodes (tools/sim/make_dataset.py), on the CPU, from random weights.

The backbone is a small SmolVLM2 made here (config, byte-level tokenizer and processor, in a
Hugging Face cache layout under OUT/hf-home, as `vlm_model_name` names it; no download), so
every weight, the vision tower's and the language model's too, is trained on the task: the
vision encoder is not frozen and the whole VLM trains with the expert.

Writes OUT/policy (the trained checkpoint as `save_pretrained` writes it: config.json,
model.safetensors and the processors), OUT/policy-backbone (the backbone's folder) and
OUT/train.log (lerobot's log); OUT is tools/sim, where `brainstem eval sim` finds them, unless
--out says otherwise. lerobot's run folder (checkpoints, optimizer state) goes under --work.

Run: python3.12 tools/sim/train.py DATASET [--out tools/sim] [--work weights/reach/train] [--steps 6000]
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reference"))
from smolvla_reference import snapshot_dir, write_backbone  # noqa: E402

BACKBONE_ID = "brainstem-sim/reach-smolvlm2"
VISION = dict(hidden_size=96, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
              image_size=64, patch_size=8, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
TEXT = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, head_dim=32, rope_theta=100000.0, rms_norm_eps=1e-5,
            hidden_act="silu", max_position_embeddings=1024, tie_word_embeddings=False)
POLICY = {
    "vlm_model_name": BACKBONE_ID, "load_vlm_weights": "false", "freeze_vision_encoder": "false",
    "train_expert_only": "false", "num_vlm_layers": "4", "expert_width_multiplier": "0.75",
    "self_attn_every_n_layers": "2", "chunk_size": "10", "n_action_steps": "10", "num_steps": "10",
    "max_state_dim": "8", "max_action_dim": "8", "resize_imgs_with_padding": "[64,64]",
    "tokenizer_max_length": "24", "optimizer_lr": "0.0003", "scheduler_warmup_steps": "300",
    "device": "cpu", "push_to_hub": "false",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=HERE)
    parser.add_argument("--work", type=pathlib.Path, default=pathlib.Path("weights/reach/train"))
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    out, work = args.out.resolve(), args.work.resolve()
    hf_home = work / "hf-home"
    backbone = snapshot_dir(hf_home, BACKBONE_ID)
    write_backbone(hf_home=hf_home, backbone=backbone, vision=VISION, text=TEXT)
    run_dir = work / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    command = [
        str(pathlib.Path(sys.executable).with_name("lerobot-train")),
        "--dataset.repo_id=brainstem/reach", f"--dataset.root={args.dataset.resolve()}",
        "--policy.type=smolvla", *[f"--policy.{k}={v}" for k, v in POLICY.items()],
        f"--output_dir={run_dir}", f"--steps={args.steps}", f"--batch_size={args.batch_size}",
        f"--save_freq={args.steps}", "--log_freq=100", "--num_workers=1", "--seed=7",
        "--wandb.enable=false",
    ]
    env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               TQDM_DISABLE="1")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "w") as log:
        subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    install(run_dir / "checkpoints" / "last" / "pretrained_model", out / "policy")
    install(backbone, out / "policy-backbone")
    print(f"trained policy written to {out / 'policy'}, its backbone to {out / 'policy-backbone'}")


def install(source, target):
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


if __name__ == "__main__":
    main()
