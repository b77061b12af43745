"""Training and evaluation loops, the data sets by name, and the ``cucnn train`` run: progress bar,
validation each epoch, checkpoint and metrics after each epoch, test accuracy and plots at the end.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import _backend, _random, checkpoint, data, models, optim
from . import functional as F
from .tensor import Tensor, no_grad

DATASETS = ("fashion-mnist", "mnist", "xo")


def auto_device() -> str:
    from . import cuda
    return "cuda" if cuda.is_available() else "cpu"


def load_datasets(name: str, root=None, val_size: int = 5000, limit: int | None = None,
                  seed: int = 0) -> tuple:
    """(train, val or None, test) ArrayDatasets for a data set name, inputs normalised by the data
    set's mean and standard deviation. Validation is the last ``val_size`` training images (Keras's
    validation_split); ``limit`` keeps at most that many images of each split."""
    if name == "xo":
        train, val, test = (data.XO(n, seed=seed + k) for k, n in ((0, 400), (1, 100), (2, 200)))
    elif name in ("fashion-mnist", "mnist"):
        cls = data.FashionMNIST if name == "fashion-mnist" else data.MNIST
        full = cls(root, train=True, normalize=True)
        test = cls(root, train=False, normalize=True)
        val_size = min(int(val_size), len(full) // 2)
        cut = len(full) - val_size
        train = full.subset(slice(0, cut))
        val = full.subset(slice(cut, None)) if val_size else None
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if limit:
        train, test = train.subset(slice(0, limit)), test.subset(slice(0, limit))
        val = val.subset(slice(0, limit)) if val is not None else None
    return train, val, test


def _batch_tensors(xb, yb, device):
    xp = _backend.xp_of(device)
    return Tensor._wrap(xp.asarray(xb), device), Tensor._wrap(xp.asarray(yb), device)


def _correct(logits: Tensor, y: Tensor) -> int:
    return int((logits.data.argmax(axis=1) == y.data).sum())


def evaluate(model, dataset, device: str, batch_size: int = 1000) -> tuple:
    """(mean cross-entropy, accuracy) of ``model`` over ``dataset``, in eval mode, without grad."""
    was = model.training
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    with no_grad():
        for xb, yb in data.DataLoader(dataset, batch_size):
            x, y = _batch_tensors(xb, yb, device)
            logits = model(x)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum").item())
            correct += _correct(logits, y)
            total += len(yb)
    model.train(was)
    return (loss_sum / total, correct / total) if total else (math.nan, math.nan)


class Progress:
    """One line per epoch, redrawn in place on a terminal (at most 10 times a second); elsewhere
    (logs, CI) only the finished line is printed."""

    def __init__(self, total: int, prefix: str, stream=None):
        self.total, self.prefix = total, prefix
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last = 0.0

    def line(self, done: int, stats: str) -> str:
        width = 24
        filled = int(width * done / max(self.total, 1))
        bar = "=" * filled + (">" if filled < width else "") + "." * max(width - filled - 1, 0)
        return f"{self.prefix} [{bar}] {done}/{self.total} {stats}"

    def update(self, done: int, stats: str) -> None:
        now = time.perf_counter()
        if self.tty and (now - self.last > 0.1 or done == self.total):
            self.last = now
            self.stream.write("\r" + self.line(done, stats) + "\x1b[K")
            self.stream.flush()

    def close(self, done: int, stats: str) -> None:
        self.stream.write(("\r" if self.tty else "") + self.line(done, stats) +
                          ("\x1b[K\n" if self.tty else "\n"))
        self.stream.flush()


def train_epoch(model, optimizer, dataset, device: str, batch_size: int, seed: int,
                prefix: str = "train", stream=None, sampler=None, should_stop=None,
                transform=None) -> dict:
    """One pass over ``dataset`` in a shuffled order fixed by ``seed``; returns loss, accuracy,
    seconds and images per second. Data-parallel runs pass this rank's ``sampler`` (then
    ``batch_size`` is per rank and the figures are summed over ranks) and ``should_stop``, asked
    after each step, which raises KeyboardInterrupt at the same step on every rank."""
    model.train()
    loader = data.DataLoader(dataset, batch_size, shuffle=True, seed=seed, transform=transform) \
        if sampler is None else \
        data.DataLoader(dataset, batch_size, sampler=sampler, transform=transform)
    bar = Progress(len(loader), prefix, stream)
    seen, loss_sum, correct = 0, 0.0, 0
    t0 = time.perf_counter()
    stats = ""
    for i, (xb, yb) in enumerate(loader):
        x, y = _batch_tensors(xb, yb, device)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()  # frees the graph's saved tensors
        optimizer.step()
        n = len(yb)
        loss_sum += float(loss.item()) * n
        correct += _correct(logits, y)
        del x, y, logits, loss  # nothing of this step's graph stays alive during the next forward
        seen += n
        rate = seen / (time.perf_counter() - t0)
        stats = f"loss {loss_sum / seen:.4f} acc {100 * correct / seen:.2f}% {rate:,.0f} img/s"
        bar.update(i + 1, stats)
        if should_stop is not None and should_stop():
            raise KeyboardInterrupt
    seconds = time.perf_counter() - t0
    if sampler is not None and sampler.num_replicas > 1:  # the whole batch's figures
        loss_sum, correct, seen = _sum_across_ranks([loss_sum, correct, seen], device)
        stats = f"loss {loss_sum / seen:.4f} acc {100 * correct / seen:.2f}% " \
            f"{seen / seconds:,.0f} img/s (all ranks)"
    result = {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
              "seconds": seconds, "images_per_s": seen / seconds if seconds else 0.0}
    bar.close(len(loader), stats)
    return result


def check_writable(out: Path) -> None:
    """Create ``out`` and write (then remove) a probe file in it, so that a read-only or
    impossible ``--out`` fails before training instead of after the first epoch."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".cucnn-write-test-"):
            pass
    except OSError as e:
        raise OSError(e.errno, f"--out {out} is not a writable directory "
                      f"({e.strerror or e})") from None


def check_input_shape(model_name: str, dataset: str, ds) -> None:
    shape = models.MODELS[model_name].input_shape
    got = tuple(ds.images.shape[1:])
    if got != shape and model_name != "fully_conv":
        raise ValueError(f"model {model_name} takes inputs of shape {shape}, but {dataset} "
                         f"images are {got} (the model expects {shape[1]}x{shape[2]} inputs)")


# ---- data parallelism (cucnn.distributed; torchrun or `cucnn train --nproc N`) -------------------


def _sum_across_ranks(values, device: str) -> list:
    from . import distributed
    xp = _backend.xp_of(device)
    t = Tensor._wrap(xp.asarray(values, dtype=np.float64), device)
    return [float(v) for v in _backend.to_numpy(distributed.all_reduce(t).data)]


def _evaluate_split(model, dataset, device: str, rank: int, world: int) -> tuple:
    """``evaluate`` with every rank taking every world-th image, summed over ranks."""
    if world == 1:
        return evaluate(model, dataset, device)
    part = dataset.subset(slice(rank, None, world))
    loss, acc = evaluate(model, part, device) if len(part) else (0.0, 0.0)
    loss_sum, correct, n = _sum_across_ranks([loss * len(part), acc * len(part), len(part)],
                                             device)
    return (loss_sum / n, correct / n) if n else (math.nan, math.nan)


class _StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM on any rank stops every rank after the same step: the handler
    only sets a flag, and each step all-reduces it (a sum over ranks), so no rank is left in a
    collective the others never join and no rank stops in the middle of an optimizer step."""

    def __init__(self, device: str):
        import signal
        self.device, self.flag = device, 0.0
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._set)

    def _set(self, signum, frame):
        self.flag = 1.0

    def __call__(self) -> bool:
        return _sum_across_ranks([self.flag], self.device)[0] > 0


def make_optimizer(name: str, params, lr: float):
    if name == "adam":
        return optim.Adam(params, lr=lr)
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9)
    raise ValueError(f"unknown optimizer {name!r}; choose adam or sgd")


def augmentation(dataset: str, train_set):
    """The augmentation of ``cucnn train`` for models that ask for it: random crops of the image
    size from a 2-pixel zero (black) border, and left-right flips except for digits. Batches are
    already normalised, so black is -mean/std."""
    from . import transforms
    t = getattr(train_set, "transform", None)
    black = -t.mean / t.std if isinstance(t, data.Normalize) else 0.0
    H, W = train_set.images.shape[-2:]
    steps = [transforms.RandomCrop((H, W), padding=2, fill=black)]
    if dataset != "mnist":
        steps.append(transforms.RandomHorizontalFlip())
    return transforms.Compose(steps)


def run(model_name: str = "lenet5", dataset: str = "fashion-mnist", epochs: int = 5,
        batch_size: int = 64, optimizer: str = "adam", lr: float = 1e-3, device: str = "auto",
        seed: int = 0, out="runs/lenet5", data_root=None, val_size: int = 5000,
        limit: int | None = None, resume: bool = False, plots: bool = True, stream=None,
        augment: bool | None = None) -> dict:
    """The ``cucnn train`` run. Returns the metrics it writes to ``out/metrics.json``.
    ``augment`` (default: the model's ``ModelInfo.augment``) adds random crops and flips."""
    stream = stream or sys.stderr
    device = auto_device() if device == "auto" else _backend.check_device(device)
    _backend.keep_host_memory()  # see its docstring: 40% of a cpu step otherwise
    from . import distributed
    rank, world = 0, 1
    if distributed.launched_by_torchrun():  # `torchrun -m cucnn.cli train` or `--nproc N`
        if batch_size % int(os.environ["WORLD_SIZE"]):
            raise ValueError(f"--batch-size {batch_size} (the global batch) must be a multiple "
                             f"of the number of processes, {os.environ['WORLD_SIZE']}")
        distributed.init_process_group(device=device)
        rank, world = distributed.get_rank(), distributed.get_world_size()
        if rank:
            stream = open(os.devnull, "w")  # rank 0 reports, writes metrics, checkpoints, plots
    try:
        return _run(model_name, dataset, epochs, batch_size, optimizer, lr, device, seed, out,
                    data_root, val_size, limit, resume, plots, stream, rank, world, augment)
    finally:
        if world > 1 or distributed.launched_by_torchrun():
            distributed.destroy_process_group()


def _run(model_name, dataset, epochs, batch_size, optimizer, lr, device, seed, out, data_root,
         val_size, limit, resume, plots, stream, rank=0, world=1, augment=None) -> dict:
    if model_name not in models.MODELS:
        raise ValueError(f"unknown model {model_name!r}; choose one of {', '.join(models.MODELS)}")
    out = Path(out)
    check_writable(out)  # before any data is read or epoch trained
    ckpt_path, metrics_path = out / "checkpoint.npz", out / "metrics.json"
    train_set, val_set, test_set = load_datasets(dataset, data_root, val_size, limit, seed)
    check_input_shape(model_name, dataset, train_set)
    _random.manual_seed(seed)
    model = models.create(model_name, device=device)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    augment = models.MODELS[model_name].augment if augment is None else bool(augment)
    transform = augmentation(dataset, train_set) if augment else None
    metrics = {"model": model_name, "dataset": dataset, "device": device, "seed": seed,
               "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
               "parameters": sum(p.numel() for p in model.parameters()),
               "train_size": len(train_set), "val_size": len(val_set) if val_set else 0,
               "test_size": len(test_set), "epochs": [],
               "augmentation": repr(transform) if transform is not None else None}
    if world > 1:
        metrics["processes"] = world  # batch_size is the global batch, split across them
    start = 0
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        ck = checkpoint.load(ckpt_path)
        if ck["arch"] != model_name:
            raise ValueError(f"--resume: {ckpt_path} holds a {ck['arch']!r} model, not "
                             f"{model_name!r}")
        model.load_state_dict(ck["model"])
        if ck["optimizer"] is not None:
            opt.load_state_dict(ck["optimizer"])
        start = ck["epoch"]
        if metrics_path.is_file():
            metrics["epochs"] = json.loads(metrics_path.read_text())["epochs"][:start]
        print(f"resuming {model_name} from {ckpt_path} after epoch {start}", file=stream)
    print(f"training {model_name} ({metrics['parameters']:,} parameters) on {dataset} "
          f"({len(train_set):,} train, {metrics['val_size']:,} validation, {len(test_set):,} test) "
          f"on device {device}" + (f", {world} processes x batch {batch_size // world}"
                                   if world > 1 else ""), file=stream)
    net, sampler, should_stop = model, None, None
    if world > 1:
        from . import distributed
        net = distributed.DistributedDataParallel(model)  # after a resume: rank 0's weights
        sampler = data.DistributedSampler(train_set, world, rank, shuffle=True, seed=seed)
        should_stop = _StopFlag(device)

    def save(epoch, **extra):
        if rank:
            return
        checkpoint.save(ckpt_path, model, opt, arch=model_name, epoch=epoch, dataset=dataset,
                        **extra)
        metrics_path.write_text(json.dumps(metrics, indent=2))

    epoch = start
    try:
        for epoch in range(start, epochs):
            # dropout: the same masks after a resume; each rank its own (rank 0's as one process)
            _random.manual_seed(seed * 1000 + epoch + 1_000_003 * rank)
            rec = {"epoch": epoch + 1}
            if sampler is not None:
                sampler.set_epoch(epoch)
            rec.update(train_epoch(net, opt, train_set, device, batch_size // world,
                                   seed * 1000 + epoch, f"epoch {epoch + 1}/{epochs}", stream,
                                   sampler, should_stop, transform))
            if val_set is not None:
                rec["val_loss"], rec["val_acc"] = _evaluate_split(model, val_set, device, rank,
                                                                  world)
                print(f"  validation: loss {rec['val_loss']:.4f} acc {100 * rec['val_acc']:.2f}%",
                      file=stream)
            metrics["epochs"].append(rec)
            save(epoch + 1)
    except KeyboardInterrupt:
        save(epoch, interrupted=True)
        print(f"\ninterrupted during epoch {epoch + 1}: checkpoint of the current weights in "
              f"{ckpt_path} (epoch {epoch + 1} restarts with --resume)", file=stream)
        metrics["interrupted"] = True
        return metrics
    metrics["test_loss"], metrics["test_acc"] = _evaluate_split(model, test_set, device, rank,
                                                                world)
    metrics["train_seconds"] = sum(e["seconds"] for e in metrics["epochs"])
    print(f"test: loss {metrics['test_loss']:.4f} acc {100 * metrics['test_acc']:.2f}%",
          file=stream)
    save(epochs)
    if plots and rank == 0:
        from . import viz
        written = viz.write_all(out, model, metrics, test_set, device)
        if written:
            print(f"plots: {', '.join(str(p) for p in written)}", file=stream)
    print(f"metrics: {metrics_path}  checkpoint: {ckpt_path}", file=stream)
    return metrics


def eval_checkpoint(path, dataset: str | None = None, data_root=None, device: str = "auto",
                    limit: int | None = None) -> dict:
    """Test loss and accuracy of a checkpoint (data set from the checkpoint unless given)."""
    device = auto_device() if device == "auto" else _backend.check_device(device)
    ck = checkpoint.load(path)
    if ck["arch"] not in models.MODELS:
        raise ValueError(f"checkpoint {path} holds a model {ck['arch']!r} that is not in the zoo "
                         f"({', '.join(models.MODELS)})")
    dataset = dataset or ck["meta"].get("dataset") or models.MODELS[ck["arch"]].dataset
    if dataset not in DATASETS:
        raise ValueError(f"checkpoint {path}: its model {ck['arch']} was trained on {dataset!r}, "
                         f"which cucnn cannot load; pass --dataset (one of "
                         f"{', '.join(DATASETS)})")
    model = models.create(ck["arch"], device=device)
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path}: {e}") from None
    _, _, test = load_datasets(dataset, data_root, 0, limit)
    check_input_shape(ck["arch"], dataset, test)
    loss, acc = evaluate(model, test, device)
    return {"model": ck["arch"], "epoch": ck["epoch"], "dataset": dataset, "device": device,
            "test_loss": loss, "test_acc": acc, "test_size": len(test)}
