"""ResNet-20 (BatchNorm, residual blocks, global average pooling) on Fashion-MNIST with
augmentation: ``cucnn train --model resnet20``'s own run (cucnn.train.run) next to the same recipe
in PyTorch on the same machine.

Same for both: architecture (3 stages of 3 BasicBlocks, 16/32/64 channels, 1x1 conv + BN
projection shortcuts, kaiming-normal fan-out init, BN weight 1 / bias 0), the training subset and
test subset, normalisation, augmentation (cucnn.transforms: 2-pixel random crop + horizontal flip,
drawn from cucnn.manual_seed(seed*1000 + epoch) each epoch, so both see the very same crops),
shuffle order (DataLoader seed seed*1000 + epoch), Adam 1e-3, batch 64.

    OPENBLAS_NUM_THREADS=1 python benchmarks/resnet20_fashion.py --train-size 2000 --epochs 2 \\
        --threads 1 --out benchmarks/results/resnet20-fashion-mnist.json

PyTorch is optional: without it only cucnn's run is reported.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import cucnn  # noqa: E402
from cucnn import data, train  # noqa: E402


def torch_resnet20(torch, num_classes=10, in_channels=1):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + idt)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            layers, c = [], 16
            for i, w in enumerate((16, 32, 64)):
                blocks = []
                for j in range(3):
                    blocks.append(Block(c, w, 2 if i > 0 and j == 0 else 1))
                    c = w
                layers.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = layers
            self.fc = nn.Linear(64, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return Net()


def datasets(train_size, data_root):
    """The first ``train_size`` training images and the first ``train_size`` test images (what
    ``cucnn train --limit`` takes), normalised."""
    train_set, _, test_set = train.load_datasets("fashion-mnist", data_root, 0, train_size)
    return train_set, test_set


def torch_run(torch, epochs, seed, train_size, batch, data_root):
    train_set, test_set = datasets(train_size, data_root)
    aug = train.augmentation("fashion-mnist", train_set)
    torch.manual_seed(seed)
    model = torch_resnet20(torch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = []
    for epoch in range(epochs):
        cucnn.manual_seed(seed * 1000 + epoch)  # the augmentation draws, as cucnn train
        model.train()
        t0 = time.perf_counter()
        seen = loss_sum = correct = 0
        for xb, yb in data.DataLoader(train_set, batch, shuffle=True, seed=seed * 1000 + epoch,
                                      transform=aug):
            logits = model(torch.from_numpy(np.ascontiguousarray(xb)))
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(yb)
            correct += int((logits.argmax(1).numpy() == yb).sum())
            seen += len(yb)
        out.append({"epoch": epoch + 1, "seconds": time.perf_counter() - t0,
                    "train_loss": loss_sum / seen, "train_acc": correct / seen})
        print(f"torch epoch {epoch + 1}: {out[-1]['seconds']:.1f} s, train loss "
              f"{out[-1]['train_loss']:.4f} acc {100 * out[-1]['train_acc']:.2f}%", flush=True)
    model.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in data.DataLoader(test_set, 1000):
            correct += int((model(torch.from_numpy(xb)).argmax(1).numpy() == yb).sum())
    params = sum(p.numel() for p in model.parameters())
    return {"epochs": out, "test_acc": correct / len(test_set), "parameters": params,
            "train_size": len(train_set), "test_size": len(test_set)}


def cucnn_run(epochs, seed, train_size, batch, data_root, out_dir):
    m = train.run("resnet20", "fashion-mnist", epochs, batch, "adam", 1e-3, "cpu", seed, out_dir,
                  data_root, 0, train_size, plots=False)
    return {"epochs": [{k: e[k] for k in ("epoch", "seconds", "train_loss", "train_acc")}
                       for e in m["epochs"]],
            "test_acc": m["test_acc"], "parameters": m["parameters"],
            "train_size": m["train_size"], "test_size": m["test_size"],
            "augmentation": m["augmentation"]}


def markdown(p) -> str:
    a = p["args"]
    lines = ["# ResNet-20 on Fashion-MNIST with augmentation: cucnn vs PyTorch", "",
             *_common.env_lines(p["env"]), "",
             f"Subset: the first {a['train_size']:,} training images and the first "
             f"{a['train_size']:,} test images (the machine has 2 shared cores; a full epoch of "
             f"cucnn's cpu path takes too long here), {a['epochs']} epochs, Adam 1e-3, batch "
             f"{a['batch']}, seed {a['seed']}. Augmentation `{p['cucnn']['augmentation']}` for "
             "both, with identical draws; same shuffle order; same architecture and init "
             "scheme (weights differ: each library draws its own).", "",
             "| epoch | cucnn train loss | cucnn train acc | cucnn s | torch train loss | "
             "torch train acc | torch s |", "|---|---|---|---|---|---|---|"]
    t = p.get("torch") or {"epochs": []}
    for i, e in enumerate(p["cucnn"]["epochs"]):
        te = t["epochs"][i] if i < len(t["epochs"]) else None
        lines.append(f"| {e['epoch']} | {e['train_loss']:.4f} | {100 * e['train_acc']:.2f}% | "
                     f"{e['seconds']:.0f} | "
                     + (f"{te['train_loss']:.4f} | {100 * te['train_acc']:.2f}% | "
                        f"{te['seconds']:.0f} |" if te else "– | – | – |"))
    lines += ["", f"Test accuracy after {a['epochs']} epochs (eval mode, running BN statistics): "
              f"cucnn **{100 * p['cucnn']['test_acc']:.2f}%**"
              + (f", PyTorch **{100 * t['test_acc']:.2f}%**" if p.get("torch") else "")
              + f" on {p['cucnn']['test_size']:,} test images. Parameters: cucnn "
              f"{p['cucnn']['parameters']:,}" + (f", PyTorch {t['parameters']:,}" if
                                                  p.get("torch") else "") + "."]
    if p.get("note"):
        lines += ["", p["note"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-size", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (set OPENBLAS_NUM_THREADS for NumPy alike)")
    ap.add_argument("--note", default="")
    ap.add_argument("--out", default="benchmarks/results/resnet20-fashion-mnist.json")
    args = ap.parse_args(argv)
    cucnn._backend.keep_host_memory()
    torch = _common.torch_or_none()
    if torch is not None and args.threads:
        torch.set_num_threads(args.threads)
    payload = {"env": _common.environment("cpu"), "args": vars(args), "note": args.note}
    if torch is not None:
        payload["env"]["torch_threads"] = torch.get_num_threads()
    if torch is not None:
        payload["torch"] = torch_run(torch, args.epochs, args.seed, args.train_size, args.batch,
                                     args.data_root)
    with tempfile.TemporaryDirectory() as tmp:
        payload["cucnn"] = cucnn_run(args.epochs, args.seed, args.train_size, args.batch,
                                     args.data_root, tmp)
    path = _common.write_json(args.out, payload)
    path.with_suffix(".md").write_text(markdown(payload))
    print(markdown(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
