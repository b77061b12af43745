"""The benchmark scripts run end to end on a tiny suite (sim and cpu), so they cannot rot: every
implementation's output is checked against the baseline's before it is timed."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

import cucnn

ROOT = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("device,torch", [("cpu", False), ("cpu", True), ("sim", False)])
def test_ops_tiny_suite(tmp_path, monkeypatch, device, torch):
    """Without PyTorch (a fresh machine) the chart shows each op's share of the peak; with it,
    the ratio to PyTorch's time."""
    if device == "sim" and not cucnn.sim.is_available():
        pytest.skip("cucnn._sim did not build")
    if torch and not _has_torch():
        pytest.skip("PyTorch is not installed: its baseline rows cannot be measured")
    ops = _load("ops")
    if not torch:
        monkeypatch.setattr(ops._common, "torch_or_none", lambda: None)
    out = tmp_path / f"ops-{device}.json"
    rc = ops.main(["--device", device, "--suite", "tiny", "--reps", "2", "--rotate", "1",
                   "--out", str(out)])
    assert rc == 0
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    ops_seen = {r["op"] for r in rows}
    assert {"conv2d", "max_pool2d", "avg_pool2d", "relu", "softmax", "cross_entropy"} <= ops_seen
    assert {r["direction"] for r in rows if r["op"] == "conv2d"} == {"fwd", "dgrad", "wgrad"}
    assert all(r["check"] in ("baseline", "ok") for r in rows), [r for r in rows
                                                                if r["check"] not in ("baseline", "ok")]
    ours = [r for r in rows if r["impl"].startswith("cucnn")]
    assert ours and all(r["ms"] > 0 and r["ms_min"] <= r["ms"] <= r["ms_max"] and "vs_baseline"
                        in r and 0 < r["peak_share"] for r in ours)
    if device == "sim":
        assert {"cucnn-sim", "cucnn-sim-v0"} <= {r["impl"] for r in rows}
    assert any(r["impl"] == "torch-cpu" for r in rows) == (torch and device == "cpu")
    assert payload["env"]["device"] == device and payload["peaks"]["gemm_gflops"] > 0
    md = out.with_suffix(".md").read_text()
    assert "| conv2d | fwd |" in md and "× base" in md
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_ops_suites_cover_the_issue_shapes():
    ops = _load("ops")
    full = ops.suite("full")
    labels = {c[0] for c in full["conv"]}
    assert {"lenet-conv1", "resnet-stem", "vgg-224", "speech"} <= labels and len(labels) == 16
    speech = next(c for c in full["conv"] if c[0] == "speech")
    assert speech[1:9] == (16, 1, 161, 700, 32, 5, 20, 2)
    small = ops.suite("small")
    assert len(small["conv"]) == 16 and all(c[1] <= 64 for c in small["conv"])
    with pytest.raises(ValueError, match="unknown suite"):
        ops.suite("huge")


def test_train_step_runs(tmp_path):
    ts = _load("train_step")
    out = tmp_path / "train.json"
    assert ts.main(["--devices", "cpu", "--batches", "4", "--steps", "2", "--warmup", "1",
                    "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    cu = [r for r in payload["steps"] if r["impl"] == "cucnn"]
    assert len(cu) == 1 and cu[0]["ms"] > 0 and cu[0]["images_per_s"] > 0
    assert "| cpu | 4 | cucnn |" in out.with_suffix(".md").read_text()
