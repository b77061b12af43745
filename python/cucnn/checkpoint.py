"""Checkpoints as ``.npz`` (no pickle): parameters, optimizer state, architecture name, epoch.

Keys: ``model/<param name>``; ``optim/state/<i>/<key>`` and ``optim/group/<g>/<key>`` (scalars and
tuples as arrays, the parameter numbering as in ``Optimizer.state_dict``); ``meta/<key>`` for the
architecture, epoch and anything else given (strings, numbers, or JSON under ``meta/json``).
Writes go to a temporary file that replaces the old one, so an interrupted save leaves the
previous checkpoint intact.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def save(path, model, optimizer=None, arch: str = "", epoch: int = 0, **meta) -> Path:
    path = Path(path)
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        sd = optimizer.state_dict()
        for i, st in sd["state"].items():
            for k, v in st.items():
                arrays[f"optim/state/{i}/{k}"] = np.asarray(v)
        for g, group in enumerate(sd["param_groups"]):
            for k, v in group.items():
                arrays[f"optim/group/{g}/{k}"] = np.asarray(v)
        arrays["meta/optimizer"] = np.asarray(type(optimizer).__name__)
    arrays["meta/arch"] = np.asarray(arch)
    arrays["meta/epoch"] = np.asarray(int(epoch))
    arrays["meta/json"] = np.asarray(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load(path) -> dict:
    """{"model": state_dict, "optimizer": optimizer state_dict or None, "arch", "epoch", "meta"}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"checkpoint {path} is not a readable .npz file ({e})") from None
    with z:
        files = {k: z[k] for k in z.files}
    for required in ("meta/arch", "meta/epoch"):
        if required not in files:
            raise ValueError(f"checkpoint {path} has no {required!r}: not a cucnn checkpoint")
    model = {k[len("model/"):]: v for k, v in files.items() if k.startswith("model/")}
    optim = None
    if "meta/optimizer" in files:
        state, groups = {}, {}
        for k, v in files.items():
            parts = k.split("/")
            if parts[:2] == ["optim", "state"]:
                val = v if v.ndim else v.item()
                state.setdefault(int(parts[2]), {})[parts[3]] = val
            elif parts[:2] == ["optim", "group"]:
                val = v.tolist() if v.ndim else v.item()
                if parts[3] == "betas":
                    val = tuple(val)
                groups.setdefault(int(parts[2]), {})[parts[3]] = val
        optim = {"state": state, "param_groups": [groups[g] for g in sorted(groups)],
                 "type": str(files["meta/optimizer"])}
    return {"model": model, "optimizer": optim, "arch": str(files["meta/arch"]),
            "epoch": int(files["meta/epoch"]),
            "meta": json.loads(str(files["meta/json"])) if "meta/json" in files else {}}
