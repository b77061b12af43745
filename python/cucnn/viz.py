"""The course's figures as PNG files: loss and accuracy curves, the first conv layer's filters, and
the activation maps of one test image after each conv and pool layer. Needs matplotlib
(``pip install "cucnn[viz]"``); without it ``write_all`` says so and writes nothing.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from . import _backend, nn
from .tensor import Tensor, no_grad


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curves(metrics: dict, path) -> Path:
    plt = _pyplot()
    ep = [e["epoch"] for e in metrics["epochs"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [e["train_loss"] for e in metrics["epochs"]], "o-", label="train")
    b.plot(ep, [100 * e["train_acc"] for e in metrics["epochs"]], "o-", label="train")
    if all("val_loss" in e for e in metrics["epochs"]):
        a.plot(ep, [e["val_loss"] for e in metrics["epochs"]], "s-", label="validation")
        b.plot(ep, [100 * e["val_acc"] for e in metrics["epochs"]], "s-", label="validation")
    if "test_acc" in metrics:
        b.axhline(100 * metrics["test_acc"], color="gray", ls="--",
                  label=f"test {100 * metrics['test_acc']:.2f}%")
    a.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    b.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    from matplotlib.ticker import MaxNLocator
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{metrics['model']} on {metrics['dataset']} ({metrics['device']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _grid(ax_rows, images, title_of, cmap="gray"):
    for ax, img, t in zip(ax_rows, images, title_of):
        ax.imshow(img, cmap=cmap)
        ax.set_title(t, fontsize=7)
    for ax in ax_rows:
        ax.axis("off")


def plot_filters(model, path) -> Path | None:
    """Each filter of the first Conv2d (its first input channel), on one shared grey scale."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        return None
    plt = _pyplot()
    w = _backend.to_numpy(conv.weight.data)[:64, 0]
    cols = min(len(w), 8)
    rows = -(-len(w) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows + 0.4), squeeze=False)
    lim = float(np.abs(w).max()) or 1.0
    for ax, f, i in zip(axes.flat, w, range(len(w))):
        ax.imshow(f, cmap="gray", vmin=-lim, vmax=lim)
        ax.set_title(f"filter {i}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"first conv layer: {conv.weight.shape[0]} filters "
                 f"{conv.kernel_size[0]}x{conv.kernel_size[1]}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def activation_maps(model, image: np.ndarray, device: str) -> list:
    """[(label, maps (C, H, W))] after each conv layer (after its activation, as Keras shows a
    Conv2D layer's output) and each pooling layer of a Sequential model, for one image."""
    layers = list(model) if isinstance(model, nn.Sequential) else []
    out = []
    xp = _backend.xp_of(device)
    was = model.training
    model.eval()
    x = Tensor._wrap(xp.asarray(image[None].astype(np.float32)), device)
    n_conv = n_pool = 0
    with no_grad():
        for i, layer in enumerate(layers):
            x = layer(x)
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, nn.Conv2d):
                n_conv += 1
                if not isinstance(nxt, (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh)):
                    out.append((f"conv{n_conv}", _backend.to_numpy(x.data)[0]))
                else:
                    pending = f"conv{n_conv} + {type(nxt).__name__}"
            elif isinstance(layer, (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh)) and i and \
                    isinstance(layers[i - 1], nn.Conv2d):
                out.append((pending, _backend.to_numpy(x.data)[0]))
            elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
                n_pool += 1
                out.append((f"pool{n_pool} ({type(layer).__name__})", _backend.to_numpy(x.data)[0]))
            if x.ndim != 4:
                break
    model.train(was)
    return out


def plot_activations(model, image: np.ndarray, label: str, path, device: str) -> Path | None:
    maps = activation_maps(model, image, device)
    if not maps:
        return None
    plt = _pyplot()
    cols = min(max(m.shape[0] for _, m in maps), 16) + 1
    fig, axes = plt.subplots(len(maps), cols, figsize=(1.1 * cols, 1.25 * len(maps) + 0.5),
                             squeeze=False)
    for row, (name, m) in zip(axes, maps):
        row[0].imshow(image[0], cmap="gray")
        row[0].set_title("input" if name == maps[0][0] else "", fontsize=7)
        row[0].set_ylabel(name, fontsize=7)
        _grid(row[1:], m[:cols - 1], [f"{name.split()[0]}:{c}" for c in range(len(m))],
              cmap="viridis")
        row[0].axis("off")
        row[0].text(-0.1, 0.5, name, transform=row[0].transAxes, ha="right", va="center",
                    fontsize=7)
    fig.suptitle(f"activation maps of one test image ({label})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_all(out, model, metrics: dict, test_set, device: str, stream=None) -> list:
    """curves.png, filters.png and activations.png in ``out``; the paths written."""
    if not available():
        print('plots skipped: matplotlib is not installed (pip install "cucnn[viz]")',
              file=stream or sys.stderr)
        return []
    out = Path(out)
    written = [plot_curves(metrics, out / "curves.png"), plot_filters(model, out / "filters.png")]
    if len(test_set):
        x, y = test_set.batch(np.asarray([0]))
        name = test_set.classes[int(y[0])] if int(y[0]) < len(test_set.classes) else str(y[0])
        written.append(plot_activations(model, x[0], f"label {name}", out / "activations.png",
                                        device))
    return [p for p in written if p is not None]
