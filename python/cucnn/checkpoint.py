"""Checkpoints as ``.npz`` (no pickle): parameters, optimizer state, architecture name, epoch.

Keys: ``model/<param name>``; ``optim/state/<i>/<key>`` and ``optim/group/<g>/<key>`` (scalars and
tuples as arrays, the parameter numbering as in ``Optimizer.state_dict``); ``meta/<key>`` for the
architecture, epoch and anything else given (strings, numbers, or JSON under ``meta/json``).
Writes go to a temporary file that replaces the old one, so an interrupted save (Ctrl-C, a full
disk) leaves the previous checkpoint intact and no temporary file behind.

Loading never trusts the file: every member's ``.npy`` header is read and checked against the
member's size before any data is (a header claiming 2**40 floats is an error, not a 4 TiB
allocation), pickles are refused, and a damaged, truncated or foreign file, or a member of the
wrong type, is a ``ValueError`` naming the file and the member.
"""
from __future__ import annotations

import json
import math
import os
import zipfile
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
    try:
        _write_npz(tmp, arrays)
        os.replace(tmp, path)
    except BaseException as e:  # a full disk, Ctrl-C: keep the old checkpoint, leave no .tmp
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise OSError(e.errno, f"cannot write checkpoint {path} "
                          f"({e.strerror or e}); the previous one is kept") from None
        raise
    return path


def _write_npz(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _bad(path, why: str) -> ValueError:
    return ValueError(f"checkpoint {path}: {why}")


def _read_member(path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member: header checked against the member's size before the data is read."""
    name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
    fmt = np.lib.format
    with zf.open(info) as f:
        try:
            version = fmt.read_magic(f)
            shape, fortran, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0) else
                                     fmt.read_array_header_2_0(f))
        except ValueError as e:
            raise _bad(path, f"member {name!r} is not a .npy array ({e})") from None
        if dtype.hasobject:
            raise _bad(path, f"member {name!r} holds Python objects (a pickle); refused")
        need = math.prod(shape) * dtype.itemsize
        have = info.file_size - f.tell()
        if need != have:
            raise _bad(path, f"member {name!r}: its header claims shape {shape} of {dtype} "
                       f"({need:,} bytes), the member holds {have:,} bytes")
        raw = f.read(need)
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return arr.copy()  # writable, and no longer tied to the bytes object


def _read_npz(path) -> dict:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if not infos:
                raise _bad(path, "the archive is empty: not a cucnn checkpoint")
            return {(i.filename[:-4] if i.filename.endswith(".npy") else i.filename):
                    _read_member(path, zf, i) for i in infos}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as e:
        raise _bad(path, f"not a readable .npz file: damaged, truncated or not a checkpoint "
                   f"({type(e).__name__}: {e})") from None
    except IsADirectoryError:
        raise _bad(path, "is a directory, not a checkpoint file") from None


def _scalar(path, files, key, kind: str, what: str):
    v = files[key]
    if v.ndim != 0 or v.dtype.kind not in kind:
        raise _bad(path, f"member {key!r} must be {what}, got {v.dtype} array of shape "
                   f"{v.shape}")
    return v.item()


def _numeric(path, key, v, kinds="biuf"):
    if v.dtype.kind not in kinds:
        want = "numbers"
        raise _bad(path, f"member {key!r} must hold {want}, got dtype {v.dtype}")
    return v


def load(path) -> dict:
    """{"model": state_dict, "optimizer": optimizer state_dict or None, "arch", "epoch", "meta"}."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    files = _read_npz(path)
    for required in ("meta/arch", "meta/epoch"):
        if required not in files:
            raise _bad(path, f"no {required!r} member: not a cucnn checkpoint")
    arch = _scalar(path, files, "meta/arch", "U", "a string (the architecture name)")
    epoch = _scalar(path, files, "meta/epoch", "iu", "an integer (the epoch)")
    meta = {}
    if "meta/json" in files:
        try:
            meta = json.loads(_scalar(path, files, "meta/json", "U", "a JSON string"))
        except json.JSONDecodeError as e:
            raise _bad(path, f"member 'meta/json' is not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise _bad(path, f"member 'meta/json' must be a JSON object, got "
                       f"{type(meta).__name__}")
    for k, v in files.items():
        if k.startswith("model/"):
            _numeric(path, k, v, "iuf")  # parameters and buffers (num_batches_tracked)
        elif k.startswith("optim/"):
            parts = k.split("/")
            if len(parts) != 4 or parts[1] not in ("state", "group") or not parts[2].isdigit():
                raise _bad(path, f"member {k!r} is not optim/state/<i>/<key> or "
                           f"optim/group/<g>/<key>")
            _numeric(path, k, v)
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
                 "type": _scalar(path, files, "meta/optimizer", "U", "a string")}
    return {"model": model, "optimizer": optim, "arch": arch, "epoch": int(epoch), "meta": meta}
