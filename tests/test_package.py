"""Package-level facts: availability probes never raise, modules import, the build is honest."""
from __future__ import annotations

import shutil

import pytest

import cucnn
from cucnn import _backend


def test_availability_probes_are_booleans():
    assert cucnn.sim.is_available() is True
    assert isinstance(cucnn.cuda.is_available(), bool)
    assert isinstance(cucnn.cuda.is_built(), bool)
    assert isinstance(cucnn.cuda.device_count(), int)
    assert "cpu" in cucnn.available_devices() and "sim" in cucnn.available_devices()


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc here, so cucnn._cuda is not built")
def test_cuda_module_was_built_and_reports_no_device_without_raising():
    """Where nvcc exists (this project's machines) both modules are built; with no driver the CUDA
    module imports (static cudart) and reports zero devices rather than raising."""
    mod = _backend.cuda_module()
    assert mod is not None, "nvcc is present but cucnn._cuda was not built"
    assert mod.backend == "cuda"
    n = mod.device_count()
    assert isinstance(n, int) and n >= 0
    if n == 0:
        assert cucnn.cuda.is_available() is False
        with pytest.raises(RuntimeError, match="no CUDA device here"):
            cucnn.cuda.synchronize()


def test_sim_module():
    mod = _backend.sim_module()
    assert mod.backend == "sim"


def test_modules_embed_no_absolute_source_path():
    """-ffile-prefix-map: error messages name kernel sources relative to the repository, so two
    builds from different directories give identical modules."""
    import re
    from pathlib import Path

    sim = _backend.sim_module()
    assert b"csrc/kernels/" in Path(sim.__file__).read_bytes(), "expected kernel source names"
    for mod in (sim, _backend.cuda_module()):
        if mod is None:
            continue
        raw = Path(mod.__file__).read_bytes()
        absolute = set(re.findall(rb"/[\x21-\x7e]*?/csrc/", raw))
        assert not absolute, f"{mod.__file__} embeds absolute source paths {absolute}"


def test_package_ships_py_typed_and_a_license_matching_pyproject():
    from pathlib import Path

    assert (Path(cucnn.__file__).parent / "py.typed").is_file(), "py.typed is not installed"
    root = Path(__file__).resolve().parents[1]
    pyproject = (root / "pyproject.toml").read_text()
    assert 'license = { text = "MIT" }' in pyproject
    assert "License :: OSI Approved :: MIT License" in pyproject
    assert (root / "LICENSE").read_text().startswith("MIT License\n")
    from importlib import metadata
    meta = metadata.metadata("cucnn")
    assert meta["License"] == "MIT" or "MIT" in (meta.get("License-Expression") or "")
    assert any("MIT License" in c for c in meta.get_all("Classifier"))
