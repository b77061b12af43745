"""End-to-end: LeNet-5 training-step time (forward, cross-entropy, backward, Adam step) and
images/s at batch 64 and 256, cucnn against the same model in PyTorch (eager); and, with
``--accuracy``, the Fashion-MNIST recipe trained by both (same architecture, initialisation
scheme, data split, normalisation, shuffling and hyperparameters) with test accuracy per epoch.

    python benchmarks/train_step.py --devices cpu --out benchmarks/results/train-cpu.json
    python benchmarks/train_step.py --devices cpu --accuracy --epochs 5 --out ...
    python benchmarks/train_step.py --devices cuda ...   (where a GPU is present)

PyTorch is optional: without it only cucnn's rows are measured.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import cucnn  # noqa: E402
from cucnn import data, models, optim, train  # noqa: E402
from cucnn import functional as F  # noqa: E402
from cucnn.tensor import Tensor  # noqa: E402


def torch_lenet5(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def _sync(device, torch=None):
    if device == "cuda":
        if torch is not None:
            torch.cuda.synchronize()
        else:
            cucnn.cuda.synchronize()


def cucnn_step(device, batch):
    """A zero-argument LeNet-5 training step of cucnn on fixed random data."""
    cucnn.manual_seed(0)
    model = models.LeNet5(device=device)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    xp = cucnn._backend.xp_of(device)
    x = Tensor._wrap(xp.asarray(rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)), device)
    y = Tensor._wrap(xp.asarray(rng.integers(0, 10, batch)), device)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(device)
    return step


def torch_step(torch, device, batch):
    torch.manual_seed(0)
    model = torch_lenet5(torch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, 28, 28, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(device, torch)
    return step


def interleaved_times(steps: dict, n: int, warmup: int, per_round: int = 20) -> dict:
    """Per-step times in ms of each step function, measured in alternating rounds of
    ``per_round`` steps so that both see the same machine load (shared machines drift); each
    round starts with ``warmup`` untimed steps, while the other library's thread pool (OpenMP,
    OpenBLAS) stops spinning."""
    times = {name: [] for name in steps}
    while min(len(t) for t in times.values()) < n:
        for name, fn in steps.items():
            for _ in range(warmup):
                fn()
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def step_rows(devices, batches, steps, warmup, torch):
    rows = []
    for device in devices:
        for batch in batches:
            fns = {"cucnn": cucnn_step(device, batch)}
            if torch is not None and (device == "cpu" or (device == "cuda" and
                                                          torch.cuda.is_available())):
                fns["torch"] = torch_step(torch, device, batch)
            got = {}
            for name, t in interleaved_times(fns, steps, warmup).items():
                med = statistics.median(t)
                got[name] = med
                rows.append({"device": device, "batch": batch, "impl": name, "ms": med,
                             "ms_min": min(t), "ms_max": max(t), "images_per_s": batch / med * 1e3,
                             "steps": len(t)})
            if "torch" in got:
                rows[-2]["vs_torch"] = got["torch"] / got["cucnn"]
            for r in rows[-len(fns):]:
                print(f"{r['device']:<5} batch {r['batch']:<4} {r['impl']:<6} {r['ms']:8.2f} ms "
                      f"({r['ms_min']:.2f}-{r['ms_max']:.2f})  {r['images_per_s']:9,.0f} img/s"
                      + (f"  torch/cucnn time {r['vs_torch']:.2f}" if "vs_torch" in r else ""),
                      flush=True)
    return rows


def torch_fashion(torch, device, epochs, seed, data_root, val_size):
    """The cucnn recipe in PyTorch: same split, normalisation, shuffle order, Adam 1e-3, batch 64."""
    train_set, val_set, test_set = train.load_datasets("fashion-mnist", data_root, val_size)
    torch.manual_seed(seed)
    model = torch_lenet5(torch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = []

    def accuracy(ds):
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in data.DataLoader(ds, 1000):
                pred = model(torch.from_numpy(xb).to(device)).argmax(1).cpu().numpy()
                correct += int((pred == yb).sum())
        model.train()
        return correct / len(ds)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        for xb, yb in data.DataLoader(train_set, 64, shuffle=True, seed=seed * 1000 + epoch):
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(xb).to(device)),
                                                     torch.from_numpy(yb).to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - t0
        out.append({"epoch": epoch + 1, "seconds": seconds, "test_acc": accuracy(test_set)})
        print(f"torch epoch {epoch + 1}: {seconds:.1f} s, test acc {100 * out[-1]['test_acc']:.2f}%",
              flush=True)
    return out


def cucnn_fashion(device, epochs, seed, data_root, val_size, out_dir):
    """``cucnn train``'s own run, plus the test accuracy after each epoch (from its checkpoints)."""
    per_epoch = []
    for e in range(1, epochs + 1):
        m = train.run("lenet5", "fashion-mnist", e, 64, "adam", 1e-3, device, seed, out_dir,
                      data_root, val_size, resume=e > 1, plots=False,
                      stream=open("/dev/null", "w"))
        per_epoch.append({"epoch": e, "seconds": m["epochs"][-1]["seconds"],
                          "test_acc": m["test_acc"]})
        print(f"cucnn epoch {e}: {per_epoch[-1]['seconds']:.1f} s, test acc "
              f"{100 * m['test_acc']:.2f}%", flush=True)
    return per_epoch


def markdown(payload) -> str:
    lines = ["# LeNet-5 training step: cucnn vs PyTorch (eager)", "",
             *_common.env_lines(payload["env"]), "",
             "Median of the timed steps (forward, cross-entropy, backward, Adam step), cucnn and "
             "PyTorch timed in alternating rounds of 20 steps, each round after 5 untimed steps "
             "(so the other library's idle thread pool has stopped spinning); glibc malloc tuned "
             "as `cucnn train` does (`_backend.keep_host_memory`, for both). `torch/cucnn` above 1 "
             "means cucnn is faster.", "",
             "| device | batch | impl | ms/step (min–max) | images/s | torch/cucnn |",
             "|---|---|---|---|---|---|"]
    for r in payload["steps"]:
        lines.append(f"| {r['device']} | {r['batch']} | {r['impl']} | {r['ms']:.2f} "
                     f"({r['ms_min']:.2f}–{r['ms_max']:.2f}) | {r['images_per_s']:,.0f} | "
                     f"{r.get('vs_torch', float('nan')):.2f} |".replace("| nan |", "| – |"))
    acc = payload.get("accuracy")
    if acc:
        lines += ["", f"## Fashion-MNIST, LeNet-5, {acc['epochs']} epochs, Adam 1e-3, batch 64, "
                  f"device {acc['device']}", "",
                  f"Training on the first {acc['train_size']:,} training images (the last "
                  f"{acc['val_size']:,} held out for validation), inputs normalised by mean 0.2860 "
                  "and std 0.3530, the same shuffle order for both.", "",
                  "| epoch | cucnn test acc | cucnn s | torch test acc | torch s |",
                  "|---|---|---|---|---|"]
        for i, c in enumerate(acc["cucnn"]):
            t = acc["torch"][i] if acc.get("torch") else None
            lines.append(f"| {c['epoch']} | {100 * c['test_acc']:.2f}% | {c['seconds']:.1f} | "
                         + (f"{100 * t['test_acc']:.2f}% | {t['seconds']:.1f} |" if t else "– | – |"))
        total = sum(c["seconds"] for c in acc["cucnn"])
        lines += ["", f"cucnn: {total:.1f} s of training for {acc['epochs']} epochs"
                  + (f"; torch: {sum(t['seconds'] for t in acc['torch']):.1f} s"
                     if acc.get("torch") else "")]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--devices", default="cpu", help="comma-separated: cpu, cuda, sim")
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--accuracy", action="store_true",
                    help="also train the Fashion-MNIST recipe with both (minutes)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch = _common.torch_or_none()
    # What `cucnn train` does for its process; it applies to PyTorch in this process as well.
    payload_notes = {"keep_host_memory": cucnn._backend.keep_host_memory()}
    if torch is None:
        print("train_step.py: PyTorch is not installed; only cucnn is measured", file=sys.stderr)
    devices = [d for d in args.devices.split(",") if d]
    payload = {"env": _common.environment(devices[0]), **payload_notes,
               "steps": step_rows(devices, [int(b) for b in args.batches.split(",")],
                                  args.steps, args.warmup, torch)}
    if args.accuracy:
        device = devices[0]
        run_dir = tempfile.mkdtemp(prefix="cucnn-bench-")
        acc = {"epochs": args.epochs, "device": device, "val_size": 5000,
               "train_size": 55000,
               "cucnn": cucnn_fashion(device, args.epochs, 0, args.data_root, 5000, run_dir)}
        if torch is not None:
            acc["torch"] = torch_fashion(torch, device, args.epochs, 0, args.data_root, 5000)
        payload["accuracy"] = acc
    if args.out:
        out = _common.write_json(args.out, payload)
        out.with_suffix(".md").write_text(markdown(payload))
        print(f"wrote {out}, {out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
