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
    # roofline predictions join the table as labelled rows, kept apart in the JSON
    pred = payload["predicted"]
    assert {(p["op"], p["direction"], p["shape"]) for p in pred} == \
        {(r["op"], r["direction"], r["shape"]) for r in rows}
    assert {p["impl"] for p in pred} == {"model (H100, predicted)", "model (H200, predicted)"}
    assert all(p["ms"] > 0 and 0 < p["peak_share"] <= 1 for p in pred)
    assert "| model (H100, predicted) |" in md and "predicted, " in md
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_ops_suites_cover_the_issue_shapes():
    """The suites come from the op registry (OpSpec.bench): every op family, three conv
    directions per shape, the issue's shapes in full and scaled down in small."""
    ops = _load("ops")
    full = ops.suite("full")
    conv = [c for c in full if c.op == "conv2d"]
    labels = {c.label for c in conv}
    assert {"lenet-conv1", "resnet-stem", "vgg-224", "speech"} <= labels and len(labels) == 16
    assert len(conv) == 48 and full[0].op == "conv2d"
    speech = next(c for c in conv if c.label == "speech").params
    assert tuple(speech[k] for k in "NCHWKRS") + (speech["stride"],) == \
        (16, 1, 161, 700, 32, 5, 20, 2)
    assert {"conv2d", "max_pool2d", "avg_pool2d", "relu", "softmax", "cross_entropy"} == \
        {c.op for c in full}
    small = [c for c in ops.suite("small") if c.op == "conv2d"]
    assert len(small) == 48 and all(c.params["N"] <= 64 for c in small)
    with pytest.raises(ValueError, match="unknown suite"):
        ops.suite("huge")


def test_a_registered_op_with_bench_cases_is_benchmarked(monkeypatch):
    """A new op needs only its OpSpec: its bench cases reach the benchmark without edits."""
    import numpy as np
    from cucnn.ops import _spec
    ops = _load("ops")
    case = _spec.BenchCase("negate", "fwd", "tiny-negate", "7", {"n": 7},
                           lambda rng: {"x": rng.standard_normal(7).astype(np.float32)},
                           lambda dv, i, v: -_backend_np(i["x"]), bytes=56)
    spec = _spec.OpSpec("negate", [], lambda *a: {}, bench=lambda suite: [case])
    monkeypatch.setitem(_spec.REGISTRY, "negate", spec)
    got = [c for c in ops.suite("tiny") if c.op == "negate"]
    assert got == [case]
    bench = ops.make_case(case, "cpu", None)
    assert list(bench.impls) == ["cucnn-cpu"] and bench.bytes == 56


def _backend_np(a):
    import numpy as np
    return np.asarray(a)


def test_train_step_runs(tmp_path):
    ts = _load("train_step")
    out = tmp_path / "train.json"
    assert ts.main(["--devices", "cpu", "--batches", "4", "--steps", "2", "--warmup", "1",
                    "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    cu = [r for r in payload["steps"] if r["impl"] == "cucnn"]
    assert len(cu) == 1 and cu[0]["ms"] > 0 and cu[0]["images_per_s"] > 0
    assert "| cpu | 4 | cucnn |" in out.with_suffix(".md").read_text()
