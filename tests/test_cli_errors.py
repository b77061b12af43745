"""Issue 11, section 4: every failure of the `cucnn` command is one line on stderr naming the file
or argument, with a non-zero exit code; damaged checkpoints and IDX files are clear errors; a
failed save keeps the previous checkpoint and leaves no temporary file."""
import errno
import io
import json
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import cucnn
from cucnn import checkpoint, cli, data, models, train

from test_data import _fake_mnist


@pytest.fixture
def tiny_idx(tmp_path):
    root = tmp_path / "idx"
    root.mkdir()
    _fake_mnist(root, n_train=48, n_test=16)
    return root


def _one_line_error(capsys, rc, command, progress=False):
    """The error is one line, the last on stderr (after the progress lines of a run that
    trained, with ``progress``)."""
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "Traceback" not in err and err.endswith("\n"), err
    lines = err.splitlines()
    if not progress:
        assert len(lines) == 1, err
    assert lines[-1].startswith(f"cucnn {command}: error: "), err
    assert not any(ln.startswith("cucnn ") for ln in lines[:-1]), err
    return lines[-1]


@pytest.fixture
def good_ckpt(tmp_path):
    cucnn.manual_seed(0)
    return checkpoint.save(tmp_path / "good.npz", models.XONet(), arch="xo", epoch=3,
                           dataset="xo")


def _member_data_offset(path, member):
    """Where a stored (uncompressed) member's bytes begin in the file."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    raw = path.read_bytes()
    n, e = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + n + e, info.compress_size


def _npy_bytes(header_shape, payload: bytes, descr="<f4"):
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False,
                                             "shape": header_shape})
    return f.getvalue() + payload


def _npz(path, members: dict):
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in members.items():
            if isinstance(value, bytes):
                zf.writestr(name + ".npy", value)
            else:
                f = io.BytesIO()
                np.save(f, value, allow_pickle=True)
                zf.writestr(name + ".npy", f.getvalue())
    return path


def _damaged(kind, good, tmp_path):
    raw = good.read_bytes()
    p = tmp_path / f"{kind}.npz"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        p.write_bytes(raw[:len(raw) // 2])
    elif kind == "crc":
        start, size = _member_data_offset(good, "model/0.weight.npy")
        b = bytearray(raw)
        b[start + size - 1] ^= 0x5A  # a byte of the array data: only the CRC can tell
        p.write_bytes(bytes(b))
    elif kind == "random":
        p.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "huge-header":  # claims 2**40 floats, holds 16 bytes
        _npz(p, {"meta/arch": np.asarray("xo"), "meta/epoch": np.asarray(1),
                 "model/0.weight": _npy_bytes((2 ** 40,), bytes(16))})
    elif kind == "pickle":
        _npz(p, {"meta/arch": np.asarray("xo"), "meta/epoch": np.asarray(1),
                 "model/0.weight": np.asarray([{"a": 1}], dtype=object)})
    elif kind == "directory":
        p.mkdir()
    return p


DAMAGE = {"empty": "not a readable .npz file",
          "truncated": "not a readable .npz file",
          "crc": r"not a readable \.npz file.*(CRC|crc)",
          "random": "not a readable .npz file",
          "huge-header": r"member 'model/0.weight': its header claims shape \(1099511627776,\) "
                         r"of float32 \(4,398,046,511,104 bytes\), the member holds 16 bytes",
          "pickle": "member 'model/0.weight' holds Python objects",
          "directory": "is a directory"}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_checkpoints_are_one_line_errors(kind, good_ckpt, tmp_path, capsys):
    p = _damaged(kind, good_ckpt, tmp_path)
    with pytest.raises(ValueError, match=DAMAGE[kind]) as e:
        checkpoint.load(p)
    assert str(p) in str(e.value) and "allow_pickle" not in str(e.value)
    rc = cli.main(["eval", "--checkpoint", str(p), "--device", "cpu"])
    err = _one_line_error(capsys, rc, "eval")
    assert str(p) in err and "allow_pickle" not in err


def test_a_good_checkpoint_still_loads(good_ckpt):
    ck = checkpoint.load(good_ckpt)
    assert ck["arch"] == "xo" and ck["epoch"] == 3 and ck["meta"] == {"dataset": "xo"}
    w = ck["model"]["0.weight"]
    assert w.shape == (3, 1, 3, 3) and w.dtype == np.float32 and w.flags.writeable


@pytest.mark.parametrize("member,value,message", [
    ("meta/epoch", np.asarray("five"), r"member 'meta/epoch' must be an integer \(the epoch\), "
                                       r"got <U4"),
    ("meta/arch", np.asarray(3.0), r"member 'meta/arch' must be a string"),
    ("model/0.weight", np.asarray(["a", "b"]), r"member 'model/0.weight' must hold "
                                              r"numbers, got dtype <U1"),
    ("optim/group/0/lr", np.asarray("fast"), r"member 'optim/group/0/lr' must hold numbers"),
    ("meta/json", np.asarray("{not json"), r"member 'meta/json' is not valid JSON"),
])
def test_checkpoint_member_of_the_wrong_type_is_named(tmp_path, member, value, message):
    good = {"meta/arch": np.asarray("xo"), "meta/epoch": np.asarray(1),
            "meta/optimizer": np.asarray("SGD"), "optim/group/0/lr": np.asarray(0.1),
            "model/0.weight": np.zeros((3, 1, 3, 3), np.float32)}
    good[member] = value
    p = _npz(tmp_path / "typed.npz", good)
    with pytest.raises(ValueError, match=message):
        checkpoint.load(p)


def test_eval_of_a_model_not_in_the_zoo(tmp_path, good_ckpt, capsys):
    p = checkpoint.save(tmp_path / "net.npz", models.XONet(), arch="Net", epoch=1)
    rc = cli.main(["eval", "--checkpoint", str(p), "--device", "cpu"])
    err = _one_line_error(capsys, rc, "eval")
    assert "holds a model 'Net' that is not in the zoo" in err and str(p) in err


def test_eval_of_an_xo_checkpoint_on_fashion_mnist_names_the_input_size(good_ckpt, tiny_idx,
                                                                         capsys):
    rc = cli.main(["eval", "--checkpoint", str(good_ckpt), "--dataset", "fashion-mnist",
                   "--data-root", str(tiny_idx), "--device", "cpu"])
    err = _one_line_error(capsys, rc, "eval")
    assert "model xo takes inputs of shape (1, 9, 9), but fashion-mnist images are (1, 28, 28) " \
           "(the model expects 9x9 inputs)" in err


def test_unwritable_out_fails_before_training(tmp_path, tiny_idx, monkeypatch, capsys):
    def must_not_train(*a, **k):
        raise AssertionError("trained although --out is not writable")

    monkeypatch.setattr(train, "train_epoch", must_not_train)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = ["train", "--data-root", str(tiny_idx), "--epochs", "1", "--device", "cpu"]
    rc = cli.main(argv + ["--out", str(blocker / "run")])  # a directory under a regular file
    err = _one_line_error(capsys, rc, "train")
    assert f"--out {blocker / 'run'} is not a writable directory" in err
    # A read-only directory. Root writes through permissions, so there the write is refused by
    # a patched probe instead; either way the CLI must stop before training.
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        def refuse(*a, **k):
            raise PermissionError(errno.EACCES, "Permission denied", str(ro))
        monkeypatch.setattr(train.tempfile, "NamedTemporaryFile", refuse)
    try:
        rc = cli.main(argv + ["--out", str(ro / "run" if os.geteuid() else ro)])
    finally:
        ro.chmod(0o755)
    err = _one_line_error(capsys, rc, "train")
    assert "is not a writable directory (Permission denied)" in err


def test_full_disk_keeps_the_previous_checkpoint_and_no_tmp_file(tmp_path, tiny_idx,
                                                                 monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data-root", str(tiny_idx), "--batch-size", "16", "--val-size", "16",
            "--device", "cpu", "--out", str(out), "--no-plots"]
    assert cli.main(argv + ["--epochs", "1"]) == 0
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()

    def disk_full(path, arrays):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "_write_npz", disk_full)
    rc = cli.main(argv + ["--epochs", "2", "--resume"])
    err = _one_line_error(capsys, rc, "train", progress=True)
    assert err == f"cucnn train: error: cannot write checkpoint {out / 'checkpoint.npz'} (No " \
                  f"space left on device); the previous one is kept"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "metrics.json"]
    assert (out / "checkpoint.npz").read_bytes() == before
    assert checkpoint.load(out / "checkpoint.npz")["epoch"] == 1
    # Ctrl-C during a save: the same clean-up, and the interrupt goes on
    def interrupted(path, arrays):
        path.write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "_write_npz", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(out / "checkpoint.npz", models.XONet(), arch="xo")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "metrics.json"]


def test_summary_into_a_closed_pipe_has_no_traceback():
    # `cucnn summary --model vgg16 | head -1`: the reader is gone before the command writes.
    proc = subprocess.Popen([sys.executable, "-m", "cucnn.cli", "summary", "--model", "vgg16"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert err == "" and rc == 141


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"cucnn {cucnn.__version__}"


def test_missing_data_tells_a_cli_user_about_data_root(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CUCNN_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(data, "SYSTEM_DATA", str(tmp_path / "system"))
    rc = cli.main(["train", "--epochs", "1", "--out", str(tmp_path / "r")])
    err = _one_line_error(capsys, rc, "train")
    assert "--data-root DIR" in err and "CUCNN_DATA=DIR" in err


def test_cli_input_shape_error_is_one_line(capsys):
    rc = cli.main(["summary", "--model", "lenet5", "--input-shape", "1,x,28"])
    _one_line_error(capsys, rc, "summary")


def test_idx_dimensions_multiplying_past_2_63_name_the_file(tmp_path):
    # 65536**4 = 2**64 wraps to 0 in int64: an empty data section used to pass the size check.
    p = tmp_path / "overflow-idx3-ubyte"
    p.write_bytes(struct.pack(">HBB", 0, 0x08, 4) + struct.pack(">4i", *(65536,) * 4))
    with pytest.raises(ValueError, match=rf"IDX file {p}: dimensions \(65536, 65536, 65536, "
                                         rf"65536\) of uint8 need 18446744073709551616 data "
                                         rf"bytes, the file has 0 \(truncated\)"):
        data.read_idx(p)


def test_import_cucnn_imports_checkpoint():
    code = "import cucnn; print(cucnn.checkpoint.save.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "cucnn.checkpoint"
