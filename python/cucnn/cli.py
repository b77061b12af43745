"""The ``cucnn`` command."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cucnn", description="cucnn: CNN kernels you can read, "
                                     "run on the CPU, and trust")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run every op on every available device against the oracle")
    demo.add_argument("--device", action="append", choices=["cpu", "sim", "cuda"],
                      help="limit to these devices (repeatable)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from . import demo as demo_mod
        return 0 if demo_mod.run(args.device) else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
