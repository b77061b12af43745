"""Training and evaluation loops, the data sets by name, and the ``cucnn train`` run: progress bar,
validation each epoch, checkpoint and metrics after each epoch, test accuracy and plots at the end.
"""
from __future__ import annotations

import json
import math
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
                prefix: str = "train", stream=None, transform=None) -> dict:
    """One pass over ``dataset`` in a shuffled order fixed by ``seed``; returns loss, accuracy,
    seconds and images per second."""
    model.train()
    loader = data.DataLoader(dataset, batch_size, shuffle=True, seed=seed, transform=transform)
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
    seconds = time.perf_counter() - t0
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
          f"on device {device}", file=stream)

    def save(epoch, **extra):
        checkpoint.save(ckpt_path, model, opt, arch=model_name, epoch=epoch, dataset=dataset,
                        **extra)
        metrics_path.write_text(json.dumps(metrics, indent=2))

    epoch = start
    try:
        for epoch in range(start, epochs):
            _random.manual_seed(seed * 1000 + epoch)  # dropout: the same masks after a resume
            rec = {"epoch": epoch + 1}
            rec.update(train_epoch(model, opt, train_set, device, batch_size,
                                   seed * 1000 + epoch, f"epoch {epoch + 1}/{epochs}", stream,
                                   transform))
            if val_set is not None:
                rec["val_loss"], rec["val_acc"] = evaluate(model, val_set, device)
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
    metrics["test_loss"], metrics["test_acc"] = evaluate(model, test_set, device)
    metrics["train_seconds"] = sum(e["seconds"] for e in metrics["epochs"])
    print(f"test: loss {metrics['test_loss']:.4f} acc {100 * metrics['test_acc']:.2f}%",
          file=stream)
    save(epochs)
    if plots:
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
