"""`python -m lerobot_policy_brainstem export CHECKPOINT OUT [--quantize q8_0] ...`."""

import argparse

from .export import export


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lerobot_policy_brainstem")
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("export", help="make a brainstem policy folder from a lerobot checkpoint")
    made.add_argument("checkpoint", help="a lerobot SmolVLA, pi0, pi0.5 or pi0-FAST folder")
    made.add_argument("out", help="the folder to write")
    made.add_argument("--quantize", choices=["q4_0", "q4_1", "q8_0", "q4_k", "q6_k"])
    made.add_argument("--activations", choices=["f32", "int8"], default="f32")
    made.add_argument("--threads", type=int)
    made.add_argument("--device", dest="brainstem_device", default="cpu")
    made.add_argument("--n-action-steps", type=int)
    args = vars(parser.parse_args())
    args.pop("command")
    options = {k: v for k, v in args.items() if v is not None and k not in ("checkpoint", "out")}
    print(export(args["checkpoint"], args["out"], **options))


if __name__ == "__main__":
    main()
