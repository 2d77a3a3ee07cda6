#!/usr/bin/env python3
"""The baseline the trained reaching policy is compared with: a SmolVLA of exactly the trained
one's configuration and backbone, with lerobot's own random initialisation (seed 0) and the
trained one's processors (so the same normalisation), saved by `save_pretrained`.

Run: python3.12 tools/sim/random_policy.py OUT [--policy tools/sim/policy]
     [--backbone tools/sim/policy-backbone]
"""

import argparse
import os
import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--policy", type=pathlib.Path, default=HERE / "policy")
    parser.add_argument("--backbone", type=pathlib.Path, default=HERE / "policy-backbone")
    args = parser.parse_args()
    from lerobot_rollout import hub_cache_for

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HOME"] = hub_cache_for(args.policy, args.backbone)
    import torch
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    config = SmolVLAConfig.from_pretrained(str(args.policy))
    torch.manual_seed(0)
    policy = SmolVLAPolicy(config)
    if args.out.exists():
        shutil.rmtree(args.out)
    policy.save_pretrained(str(args.out))
    for processor in args.policy.glob("policy_*processor*"):
        shutil.copy(processor, args.out / processor.name)
    print(f"random-weight baseline written to {args.out}")


if __name__ == "__main__":
    main()
