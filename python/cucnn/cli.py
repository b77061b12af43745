"""The ``cucnn`` command: train, summary, eval, demo."""
from __future__ import annotations

import argparse
import json
import os
import sys


def _parser() -> argparse.ArgumentParser:
    from .models import MODELS
    from .train import DATASETS
    parser = argparse.ArgumentParser(prog="cucnn", description="cucnn: CNN kernels you can read, "
                                     "run on the CPU, and trust")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"cucnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model of the zoo; writes metrics.json, a checkpoint "
                       "and plots to --out")
    t.add_argument("--model", default="lenet5", choices=list(MODELS))
    t.add_argument("--dataset", default="fashion-mnist", choices=list(DATASETS))
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "sim", "cuda"],
                   help="auto: cuda when available, else cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="run directory (default runs/MODEL-DATASET)")
    t.add_argument("--data-root", default=None, help="directory of the IDX files (default: "
                   "$CUCNN_DATA, then /usr/share/datasets/<dataset>)")
    t.add_argument("--val-size", type=int, default=5000,
                   help="training images held out for validation (the last ones)")
    t.add_argument("--limit", type=int, default=None,
                   help="use at most this many images per split (e.g. to train on sim)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    t.add_argument("--no-plots", action="store_true")
    t.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crops and flips of the training batches (default: on for the "
                   "models that ask for it, e.g. resnet20)")
    t.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="data-parallel training on N local processes launched by torchrun's "
                   "machinery (needs cucnn[dist]); --batch-size is the global batch. For several "
                   "nodes run `torchrun ... -m cucnn.cli train ...` on each")

    s = sub.add_parser("summary", help="print a model's layers, output shapes and parameters")
    s.add_argument("--model", default="lenet5", choices=list(MODELS))
    s.add_argument("--input-shape", default=None, help="C,H,W of one sample (default: the "
                   "model's own)")

    e = sub.add_parser("eval", help="test accuracy of a checkpoint")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--dataset", default=None, choices=list(DATASETS))
    e.add_argument("--data-root", default=None)
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "sim", "cuda"])
    e.add_argument("--limit", type=int, default=None)

    d = sub.add_parser("demo", help="run every op on every available device against the oracle")
    d.add_argument("--device", action="append", choices=["cpu", "sim", "cuda"],
                   help="limit to these devices (repeatable)")
    return parser


def _strip_nproc(argv: list) -> list:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _launch(nproc: int, argv: list) -> int:
    """``cucnn train --nproc N``: N local workers running ``python -m cucnn.cli train ...`` under
    torchrun's elastic agent (standalone rendezvous on a free port), exactly as
    ``torchrun --standalone --nproc-per-node N -m cucnn.cli train ...`` would."""
    try:
        from torch.distributed.elastic.multiprocessing import SignalException
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.run import parse_args, run
    except ImportError:
        print('cucnn train: error: --nproc needs PyTorch: pip install "cucnn[dist]"',
              file=sys.stderr)
        return 1
    try:
        run(parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "cucnn.cli",
                        *_strip_nproc(argv)]))
    except SignalException as e:  # Ctrl-C: the agent passed it on, the workers saved and left
        print(f"cucnn train: stopped by signal {e.sigval.name}", file=sys.stderr)
        return 130
    except ChildFailedError as e:
        codes = {f.exitcode for f in e.failures.values()}
        if codes == {130}:
            return 130
        print(f"cucnn train: a worker failed (exit codes {sorted(codes)}); its error is above",
              file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    """Run the command; a failure is one line on stderr (``cucnn <command>: error: ...``, naming
    the file or argument) and a non-zero exit code, never a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "train" and args.nproc is not None:
        if args.nproc < 1:
            print(f"cucnn train: error: --nproc must be at least 1, got {args.nproc}",
                  file=sys.stderr)
            return 2
        if "RANK" not in os.environ:  # under torchrun already: this process is a worker
            return _launch(args.nproc, argv)
    try:
        rc = _run(args)
        sys.stdout.flush()  # a closed pipe must fail here, not in the interpreter's exit
        return rc
    except BrokenPipeError:  # `cucnn summary | head`: the reader left; say nothing more
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail
        except (OSError, ValueError):
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a program killed by it
    except (OSError, ValueError, RuntimeError, MemoryError) as e:
        # our own OSErrors carry the whole message in strerror; others name their file
        own = isinstance(e, OSError) and e.strerror and e.filename is None and e.errno
        msg = " ".join((e.strerror if own else str(e)).split()) or type(e).__name__
        print(f"cucnn {args.command}: error: {msg}", file=sys.stderr)
        return 1


def _run(args) -> int:
    if args.command == "train":
        from . import train
        out = args.out or f"runs/{args.model}-{args.dataset}"
        metrics = train.run(args.model, args.dataset, args.epochs, args.batch_size,
                            args.optimizer, args.lr, args.device, args.seed, out,
                            args.data_root, args.val_size, args.limit, args.resume,
                            not args.no_plots, augment=args.augment)
        return 130 if metrics.get("interrupted") else 0
    if args.command == "summary":
        from . import models
        shape = tuple(int(v) for v in args.input_shape.split(",")) if args.input_shape \
            else models.MODELS[args.model].input_shape
        models.create(args.model).summary(shape)
        return 0
    if args.command == "eval":
        from . import train
        print(json.dumps(train.eval_checkpoint(args.checkpoint, args.dataset, args.data_root,
                                               args.device, args.limit), indent=2))
        return 0
    if args.command == "demo":
        from . import demo as demo_mod
        return 0 if demo_mod.run(args.device) else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
