"""Issue 18: the failures only a GPU would show, checked where they can be without one.

The argument checks live in csrc/bindings.cpp and run in both modules: the overlap check on sim
with NumPy views, the __cuda_array_interface__ parser and the device check with fake interfaces;
the decision whether the cuda device can run (driver, runtime, architectures) is a pure function
fed version and capability numbers.
"""
from __future__ import annotations

import contextlib
import json as _json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cucnn
from cucnn import _backend
from cucnn import functional as F
from cucnn import models, nn
from cucnn.ops.conv2d import conv2d_relu, linear_relu

from conftest import requires_cuda

sim = _backend.sim_module()


# ---- outputs that overlap inputs -----------------------------------------------------------------


def test_output_overlapping_input_is_refused():
    x = np.linspace(-1, 1, 40, dtype=np.float32)
    with pytest.raises(ValueError, match="y must not overlap x"):
        sim.activation_forward(0, x, x)
    base = np.zeros(30, dtype=np.float32)
    with pytest.raises(ValueError, match="y must not overlap x"):
        sim.activation_forward(0, base[0:20], base[10:30])  # shares 10 floats


def test_overlap_named_when_the_output_comes_first():
    # conv2d_forward views bias after y: the message still names the output first.
    x = np.ones((1, 1, 3, 3), np.float32)
    w = np.ones((2, 1, 1, 1), np.float32)
    y = np.zeros((1, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="y must not overlap bias"):
        sim.conv2d_forward(x, w, y.reshape(-1)[:2], y, (1, 1), (0, 0, 0, 0), (1, 1))


def test_adjacent_and_input_input_sharing_are_accepted():
    base = np.linspace(-2, 2, 40, dtype=np.float32)
    y = np.full(20, np.nan, np.float32)
    sim.activation_forward(0, base[0:20], y)
    np.testing.assert_array_equal(y, np.maximum(base[:20], 0))
    # the output right after the input in the same buffer: touching, not overlapping
    buf = base.copy()
    sim.activation_forward(0, buf[0:20], buf[20:40])
    np.testing.assert_array_equal(buf[20:], np.maximum(base[:20], 0))
    # two inputs may be the same array (read only)
    dx = np.full(20, np.nan, np.float32)
    sim.activation_backward(0, base[20:], base[20:], dx)
    np.testing.assert_array_equal(dx, np.where(base[20:] > 0, base[20:], 0))


def test_failed_call_forgets_its_arrays():
    x = np.ones(8, np.float32)
    with pytest.raises(TypeError):
        sim.activation_forward(0, x, np.zeros(8, np.float64))  # fails after viewing x
    y = np.full(8, np.nan, np.float32)
    sim.activation_forward(0, np.ones(8, np.float32), y)  # no stale x to clash with
    np.testing.assert_array_equal(y, 1)


def test_two_outputs_may_not_overlap():
    x = np.ones((1, 1, 4, 4), np.float32)
    buf = np.zeros(8, np.int64)
    idx = buf[:4].reshape(1, 1, 2, 2)  # bytes 0..32
    y = buf.view(np.float32)[4:8].reshape(1, 1, 2, 2)  # bytes 16..32
    with pytest.raises(ValueError, match="indices must not overlap y"):
        sim.max_pool2d_forward(x, y, idx, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1))


# ---- __cuda_array_interface__ and the device check -----------------------------------------------


def cai(shape=(2, 3), typestr="<f4", data=(4096, False), strides=None, **extra):
    d = {"shape": shape, "typestr": typestr, "data": data, "version": 3}
    if strides is not None:
        d["strides"] = strides
    d.update(extra)
    return d


def test_array_interface_fields():
    info = sim._parse_array_interface(cai(stream=7), "x", False)
    assert info == {"data": 4096, "shape": [2, 3], "dtype": "float32", "writeable": True,
                    "stream": 7}
    assert sim._parse_array_interface(cai(stream=None), "x", False)["stream"] == 0
    assert sim._parse_array_interface(cai(), "x", False)["stream"] == 0
    assert sim._parse_array_interface(cai(strides=(12, 4)), "x", False)["shape"] == [2, 3]
    assert sim._parse_array_interface(cai(typestr="<i8"), "t", False)["dtype"] == "int64"


def test_array_interface_errors():
    with pytest.raises(ValueError, match=r"x.__cuda_array_interface__\['stream'\] must not be 0"):
        sim._parse_array_interface(cai(stream=0), "x", False)
    with pytest.raises(ValueError, match="y must be writeable"):
        sim._parse_array_interface(cai(data=(4096, True)), "y", True)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        sim._parse_array_interface(cai(strides=(4, 8)), "x", False)
    with pytest.raises(ValueError, match="has no 'data'"):
        sim._parse_array_interface({"shape": (1,), "typestr": "<f4"}, "x", False)
    with pytest.raises(TypeError, match="must be a dict"):
        sim._parse_array_interface([1, 2], "x", False)


def test_device_check_names_argument_and_both_devices():
    sim._check_same_device("x", 0, 0)
    with pytest.raises(ValueError, match="weight is on cuda device 1 but the current device is 0"):
        sim._check_same_device("weight", 1, 0)


# ---- why the cuda device cannot run --------------------------------------------------------------

ARCHS = [750, 800, 900]
reason = _backend.unavailable_reason


def test_reason_available():
    assert reason(True, True, 13000, 13000, [(9, 0)], ARCHS) == ""
    assert reason(True, True, 13020, 13000, [(7, 5)], ARCHS) == ""  # T4: fp32 kernels
    assert reason(True, True, 13000, 13000, [(12, 0)], ARCHS) == ""  # newer GPU: PTX JIT
    assert reason(True, True, 13000, 13000, [(8, 6)], [800]) == ""  # same major


@pytest.mark.parametrize("args,words", [
    ((False, False, 0, 0, [], []), "cucnn._cuda was not built"),
    ((True, False, 0, 0, [], []), "CuPy is not installed"),
    ((True, True, 0, 13000, [], ARCHS), "no NVIDIA driver"),
    ((True, True, 12080, 13000, [], ARCHS), "supports CUDA 12.8, older than the CUDA 13 runtime"),
    ((True, True, 12080, 13000, [], ARCHS), "R580"),
    ((True, True, 13000, 13000, [], ARCHS, "no CUDA-capable device is detected"),
     "no CUDA device is visible (no CUDA-capable device is detected)"),
    ((True, True, 13000, 13000, [(7, 0)], ARCHS), "compute capability 7.0, sm_70"),
    ((True, True, 13000, 13000, [(7, 0)], ARCHS), "CUDAARCHS=70"),
    ((True, True, 13000, 13000, [(7, 5)], [800, 900]), "sm_80, sm_90"),
])
def test_reason_words(args, words):
    assert words in reason(*args)


def test_is_available_is_a_boolean_and_why_says_why():
    ok = cucnn.cuda.is_available()
    assert isinstance(ok, bool)
    why = cucnn.cuda.why_unavailable()
    assert isinstance(why, str)
    assert (why == "") == ok
    if not ok:
        with pytest.raises(RuntimeError) as err:
            cucnn.zeros(2, device="cuda")
        assert f"device 'cuda' is not available: {why}" in str(err.value)


@requires_cuda
@pytest.mark.cuda
def test_cuda_module_reports_versions_and_architectures():
    mod = _backend.cuda_module()
    assert mod.driver_version() >= 13000
    assert mod.runtime_version() >= 13000
    assert all(a % 10 == 0 for a in mod.architectures) and mod.architectures
    assert len(mod.device_capabilities()) == mod.device_count()


@requires_cuda
@pytest.mark.cuda
def test_cuda_overlap_and_device_checks():
    cp = _backend.cupy()
    mod = _backend.cuda_module()
    x = cp.linspace(-1, 1, 40, dtype=cp.float32)
    with pytest.raises(ValueError, match="y must not overlap x"):
        mod.activation_forward(0, x, x)
    if cp.cuda.runtime.getDeviceCount() > 1:
        with cp.cuda.Device(1):
            x1 = cp.ones(8, cp.float32)
        with pytest.raises(ValueError, match="x is on cuda device 1 but the current device is 0"):
            mod.activation_forward(0, x1, cp.empty(8, cp.float32))
    if cp.cuda.runtime.getDeviceCount() == 1 and os.environ.get("CUCNN_LAUNCH_BLOCKING") != "1":
        return  # one GPU: the pointer query is skipped (see view() in bindings.cpp)
    host = np.ones(8, np.float32)

    class HostCAI:  # a host pointer dressed as device memory
        __cuda_array_interface__ = {"shape": (8,), "typestr": "<f4",
                                    "data": (host.ctypes.data, False), "version": 3}
    with pytest.raises(ValueError, match="x must be in device memory"):
        mod.activation_forward(0, HostCAI(), cp.empty(8, cp.float32))


# ---- fused conv + ReLU --------------------------------------------------------------------------


@contextlib.contextmanager
def count_native_calls():
    """Counts the calls into the sim module's kernel entry points (each launches one kernel, or
    two for conv2d_backward_weight's split-K version 1) by name."""
    mod = _backend.sim_module()
    counts = {}
    names = [n for n in dir(mod) if n.endswith(("_forward", "_backward", "_backward_data",
                                                 "_backward_weight", "_backward_bias"))]

    class Counting:
        def __getattr__(self, name):
            fn = getattr(mod, name)
            if name not in names:
                return fn

            def call(*a, **k):
                counts[name] = counts.get(name, 0) + 1
                return fn(*a, **k)
            return call
    prev = _backend._sim_module
    _backend._sim_module = Counting()
    try:
        yield counts
    finally:
        _backend._sim_module = prev


def _conv_inputs(device, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    x[0, 0, 0, :3] = [0.0, -0.0, 40.0]
    w = (rng.standard_normal((5, 3, 3, 3)) / 5).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    b[1] = 0.0
    return [cucnn.tensor(a, device=device, requires_grad=True) for a in (x, w, b)]


def _grads_of(fn, device):
    x, w, b = _conv_inputs(device)
    y = fn(x, w, b)
    dy = np.random.default_rng(9).standard_normal(y.shape).astype(np.float32)
    y.backward(cucnn.tensor(dy, device=device))
    return [_backend.to_numpy(t) for t in (y.data, x.grad.data, w.grad.data, b.grad.data)]


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_conv2d_relu_equals_conv2d_then_relu(device, simt_order):
    fused = _grads_of(lambda x, w, b: conv2d_relu(x, w, b, stride=(1, 2), padding=1), device)
    plain = _grads_of(lambda x, w, b: F.relu(F.conv2d(x, w, b, stride=(1, 2), padding=1)),
                      device)
    for a, e, name in zip(fused, plain, ("y", "dx", "dw", "db")):
        np.testing.assert_array_equal(a, e, err_msg=name)
    assert (fused[0] == 0).any() and (fused[0] > 0).any()  # the mask does something


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_linear_relu_equals_linear_then_relu(device, simt_order):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((7, 13), (5, 13), (5,))]

    def run(fn):
        x, w, b = [cucnn.tensor(a, device=device, requires_grad=True) for a in arrays]
        y = fn(x, w, b)
        y.sum().backward()
        return [_backend.to_numpy(t) for t in (y.data, x.grad.data, w.grad.data, b.grad.data)]
    for a, e in zip(run(linear_relu), run(lambda x, w, b: F.relu(F.linear(x, w, b)))):
        np.testing.assert_array_equal(a, e)


def _lenet_step(device, fuse, batch=4):
    cucnn.manual_seed(0)
    model = models.LeNet5(device=device)
    model.fuse_relu = fuse
    rng = np.random.default_rng(0)
    x = cucnn.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32), device=device)
    y = cucnn.tensor(rng.integers(0, 10, batch), device=device)
    with count_native_calls() as counts:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    grads = [_backend.to_numpy(p.grad.data) for p in model.parameters()]
    return _backend.to_numpy(loss.data), grads, counts


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_sequential_fusion_same_results_fewer_launches(device, simt_order):
    loss_f, grads_f, counts_f = _lenet_step(device, True)
    loss_u, grads_u, counts_u = _lenet_step(device, False)
    np.testing.assert_array_equal(loss_f, loss_u)
    for a, e in zip(grads_f, grads_u):
        np.testing.assert_array_equal(a, e)
    if device == "sim":
        # LeNet-5: four layer+ReLU pairs (two Conv2d, two Linear) lose their ReLU forward launch
        assert counts_u["activation_forward"] == 4 and "activation_forward" not in counts_f
        assert counts_f["activation_backward"] == counts_u["activation_backward"] == 4
        assert sum(counts_u.values()) - sum(counts_f.values()) == 4


def test_sequential_does_not_fuse_with_hooks_or_subclasses():
    seen = []
    conv, relu = nn.Conv2d(1, 2, 3), nn.ReLU()
    relu.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    model = nn.Sequential(conv, relu)
    x = cucnn.ones(1, 1, 5, 5)
    model(x)
    assert seen == [(1, 2, 3, 3)]  # the ReLU ran as itself

    class Doubling(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2
    torch_like = nn.Sequential(Doubling(1, 2, 3), nn.ReLU())
    a = torch_like(x)
    b = F.relu(torch_like[0](x))
    np.testing.assert_array_equal(_backend.to_numpy(a.data), _backend.to_numpy(b.data))


# ---- scripts/gpu_check.sh up to the GPU, and its summary writer ----------------------------------


ROOT = pathlib.Path(__file__).resolve().parents[1]
GPU_CHECK = ROOT / "scripts" / "gpu_check.sh"
FAKE_RESULTS = ROOT / "tests" / "data" / "gpu_check_fake"


def _fake_bin(tmp_path, nvcc_release="13.0", smi_line=None):
    """A bin folder with a fake nvcc (when nvcc_release) and nvidia-smi (when smi_line)."""
    b = tmp_path / "bin"
    b.mkdir(exist_ok=True)
    if nvcc_release:
        (b / "nvcc").write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {nvcc_release}, "
                                f"V{nvcc_release}.0'\n")
        (b / "nvcc").chmod(0o755)
    if smi_line is not None:
        (b / "nvidia-smi").write_text(f"#!/bin/sh\nprintf '%s' '{smi_line}'\n")
        (b / "nvidia-smi").chmod(0o755)
    return b


def _gpu_check(tmp_path, *args, bin_dir=None, pythonpath=None):
    env = {"PATH": (f"{bin_dir}:" if bin_dir else "") + "/usr/bin:/bin",
           "PYTHON": sys.executable, "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(["bash", str(GPU_CHECK), "--out", str(tmp_path / "out"), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_gpu_check_help_and_bad_arguments(tmp_path):
    r = subprocess.run(["bash", str(GPU_CHECK), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--data-root" in r.stdout and "R580" in r.stdout
    r = _gpu_check(tmp_path, "--frobnicate")
    assert r.returncode == 3 and "unknown argument '--frobnicate'" in r.stderr
    r = _gpu_check(tmp_path, "--epochs", "five")
    assert r.returncode == 3 and "--epochs must be a positive integer, got 'five'" in r.stderr
    r = subprocess.run(["bash", str(GPU_CHECK), "--out"], capture_output=True, text=True)
    assert r.returncode == 3 and "--out needs a directory" in r.stderr


def test_gpu_check_without_nvcc(tmp_path):
    assert shutil.which("nvcc", path="/usr/bin:/bin") is None, "this test needs nvcc off /usr/bin"
    r = _gpu_check(tmp_path)
    assert r.returncode == 3
    assert "nvcc not found on PATH" in r.stderr and "what to do: install the CUDA 13" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing written before the checks pass


@pytest.mark.parametrize("nvcc,smi,words", [
    ("12.4", None, "nvcc 12.4 found; cucnn needs CUDA 13"),
    ("13.0", None, "nvidia-smi not found: no NVIDIA driver, or no GPU"),
    ("13.0", "", "nvidia-smi lists no GPU"),
    ("13.0", "550.54.14, 9.0, NVIDIA H100", "driver 550.54.14 is too old"),
    ("13.0", "580.65.06, 7.0, Tesla V100", "(sm_70) is older than sm_75"),
])
def test_gpu_check_early_failures(tmp_path, nvcc, smi, words):
    if smi is None:
        assert shutil.which("nvidia-smi", path="/usr/bin:/bin") is None
    r = _gpu_check(tmp_path, bin_dir=_fake_bin(tmp_path, nvcc, smi))
    assert r.returncode == 3, r.stderr
    assert words in r.stderr and "what to do:" in r.stderr


def test_gpu_check_needs_cupy_then_data(tmp_path):
    good = _fake_bin(tmp_path, "13.0", "580.65.06, 9.0, NVIDIA H100 80GB HBM3")
    try:
        import cupy  # noqa: F401
        has_cupy = True
    except Exception:
        has_cupy = False
    if not has_cupy:
        r = _gpu_check(tmp_path, bin_dir=good)
        assert r.returncode == 3 and "CuPy does not import" in r.stderr
        assert "pip install cupy-cuda13x" in r.stderr
    fake = tmp_path / "fakecupy"
    (fake / "cupy").mkdir(parents=True)
    (fake / "cupy" / "__init__.py").write_text("")
    r = _gpu_check(tmp_path, "--data-root", str(tmp_path / "nodata"), bin_dir=good,
                   pythonpath=fake if not has_cupy else None)
    assert r.returncode == 3
    assert "Fashion-MNIST file train-images-idx3-ubyte(.gz) not found" in r.stderr


def test_gpu_check_summary_of_recorded_results(tmp_path):
    out = tmp_path / "results"
    shutil.copytree(FAKE_RESULTS, out)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check_summary.py"), str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 1  # a failed test step and a timed-out training in the record
    s = _json.loads((out / "summary.json").read_text())
    assert s["tests"]["passed"] == 7 and s["tests"]["failures"] == 1
    assert s["tests"]["failed_names"] == ["tests.test_kernels::test_cuda_against_oracle[pool-a-1]"]
    assert s["ops"]["conv2d fwd"] == {"shapes": 2, "mismatches": 0, "median_vs_cudnn": 1.0,
                                      "median_vs_cudnn_tf32": 0.5}
    assert s["ops"]["conv2d wgrad"]["mismatches"] == 1
    assert s["ops"]["conv2d wgrad"]["median_vs_cudnn"] is None
    assert s["ops"]["activation relu fwd"]["median_vs_cudnn"] == 2.0
    cuda64 = next(t for t in s["train_step"] if t["device"] == "cuda" and t["batch"] == 64)
    assert cuda64["vs_torch"] == 0.5
    assert s["training"]["test_acc"] == 0.8931 and s["training"]["epochs"] == 5
    md = (out / "summary.md").read_text()
    assert md == r.stdout
    assert "| conv2d fwd | 2 | 1.00× | 0.50× | 0 |" in md
    assert "| train | timeout (300s) | 300 |" in md
    assert "batch 64: cuda step 5.0× faster than cpu" in md
    assert "test accuracy 89.31%" in md


def test_gpu_check_summary_of_an_empty_folder(tmp_path):
    from importlib import util
    spec = util.spec_from_file_location("gcs", ROOT / "scripts" / "gpu_check_summary.py")
    gcs = util.module_from_spec(spec)
    spec.loader.exec_module(gcs)
    assert gcs.main([str(tmp_path)]) == 0
    md = (tmp_path / "summary.md").read_text()
    assert "no tests.xml" in md and "no ops-cuda-full.json" in md and "no train-step.json" in md
    assert gcs.main([str(tmp_path / "missing")]) == 2


@requires_cuda
@pytest.mark.cuda
def test_cuda_producer_stream_is_waited_for():
    """An input whose __cuda_array_interface__ names another stream: the launch stream waits for
    it (an event), so the kernel sees the producer's finished values."""
    cp = _backend.cupy()
    mod = _backend.cuda_module()
    producer = cp.cuda.Stream(non_blocking=True)
    with producer:
        x = cp.arange(1 << 22, dtype=cp.float32) - (1 << 21)
        for _ in range(20):  # keep the producer busy for a while
            x = x * 1.0
    cai = dict(x.__cuda_array_interface__, stream=producer.ptr)

    class Produced:
        __cuda_array_interface__ = cai
    y = cp.empty_like(x)
    mod.activation_forward(0, Produced(), y, stream=cp.cuda.get_current_stream().ptr)
    cp.cuda.get_current_stream().synchronize()
    cp.testing.assert_array_equal(y, cp.maximum(x, 0))
