"""`python -m lerobot_policy_brainstem export CHECKPOINT OUT [--quantize q8_0] ...` makes a
brainstem folder; `python -m lerobot_policy_brainstem serve [lerobot's PolicyServer options]`
runs lerobot's own async-inference PolicyServer with the plugin imported (lerobot 0.6.1's
server module does not load plugins itself)."""

import argparse
import sys

from .export import export


def serve(arguments: list[str]) -> None:
    from lerobot.async_inference.policy_server import serve as lerobot_serve

    sys.argv = [f"{sys.argv[0]} serve", *arguments]
    lerobot_serve()


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
        return
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
    commands.add_parser("serve", help="lerobot's PolicyServer with the plugin loaded (its options follow)")
    args = vars(parser.parse_args())
    args.pop("command")
    options = {k: v for k, v in args.items() if v is not None and k not in ("checkpoint", "out")}
    print(export(args["checkpoint"], args["out"], **options))


if __name__ == "__main__":
    main()
