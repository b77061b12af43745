"""The sim device: the CUDA kernels compiled by the host compiler and run by cucnn's SIMT runtime.

Knobs (also the environment variables SIMT_ORDER and SIMT_THREADS, read at import):

* ``set_order("forward" | "reverse" | "random:SEED")`` — the order in which the threads of a block
  run between two synchronisation points. A missing ``__syncthreads`` gives a wrong answer in at
  least one order; correct kernels give bitwise-equal results in every order.
* ``set_threads(n)`` — host threads that run blocks in parallel (default 1).

``profile()`` records the kernels' memory accesses (sectors, bank conflicts, launches) on the
profiling build of the module; see its docstring.
"""
from __future__ import annotations

import contextlib
import os

from ._backend import sim_module


def is_available() -> bool:
    """Whether the sim device can run kernels. Never raises."""
    try:
        return sim_module() is not None
    except Exception:
        return False


def set_order(order: str) -> None:
    if not isinstance(order, str):
        raise TypeError(f"order must be a str, got {type(order).__name__}")
    sim_module().set_order(order)


def get_order() -> str:
    return sim_module().get_order()


def set_threads(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    sim_module().set_threads(n)


def get_threads() -> int:
    return sim_module().get_threads()


@contextlib.contextmanager
def order(name: str):
    """Run the body with SIMT order ``name``, then restore the previous one."""
    prev = get_order()
    set_order(name)
    try:
        yield
    finally:
        set_order(prev)


@contextlib.contextmanager
def threads(n: int):
    prev = get_threads()
    set_threads(n)
    try:
        yield
    finally:
        set_threads(prev)


# ---- the memory profiler ------------------------------------------------------------------------
class Profile:
    """What ``with cucnn.sim.profile() as prof:`` recorded (filled in when the block ends).

    ``records`` is a list of dicts, one per kernel configuration (kernel, grid, block, dynamic
    shared bytes): ``name``, ``grid``, ``block``, ``shared_bytes``, ``launches``, ``unique_bytes``
    (global bytes touched, summed over its launches), and ``accesses``, one dict per source line,
    space and direction: ``file``, ``line``, ``space`` ("global" | "shared"), ``op`` ("load" |
    "store"), ``requests`` (warp-level), ``sectors`` (global: 32-byte sectors) or ``wavefronts``
    (shared), ``ideal`` (the same for a perfect access pattern) and ``bytes`` requested. The same
    data as the JSON a profiling program writes to ``$SIMT_PROFILE``."""

    def __init__(self):
        self.records: list[dict] = []

    def launches(self) -> dict:
        """Launches per kernel name, summed over configurations."""
        out: dict = {}
        for r in self.records:
            out[r["name"]] = out.get(r["name"], 0) + r["launches"]
        return out

    @property
    def total_launches(self) -> int:
        return sum(r["launches"] for r in self.records)

    def table(self) -> str:
        """One row per kernel configuration and source line: requests, sectors or wavefronts per
        request, efficiency (ideal / actual), bank conflicts (wavefronts - ideal)."""
        rows = [f"{'kernel / line':<60} {'space':<6} {'op':<5} {'requests':>9} "
                f"{'per req':>8} {'eff':>6} {'conflicts':>9}"]
        for r in self.records:
            name = r["name"] if len(r["name"]) <= 60 else r["name"][:57] + "..."
            rows.append(f"{name} grid {tuple(r['grid'])} block {tuple(r['block'])} smem "
                        f"{r['shared_bytes']} B, {r['launches']} launch(es), "
                        f"{r['unique_bytes']} unique global bytes")
            for a in r["accesses"]:
                cost = a.get("sectors", a.get("wavefronts", 0))
                where = f"  {os.path.basename(a['file'])}:{a['line']}"
                per = cost / a["requests"] if a["requests"] else 0.0
                eff = a["ideal"] / cost if cost else 1.0
                conflicts = cost - a["ideal"] if a["space"] == "shared" else ""
                rows.append(f"{where:<60} {a['space']:<6} {a['op']:<5} {a['requests']:>9} "
                            f"{per:>8.2f} {eff:>6.3f} {conflicts:>9}")
        return "\n".join(rows)


def _profiling_library(module):
    """ctypes handle of `module` when it is a profiling build, else None."""
    import ctypes
    lib = ctypes.CDLL(module.__file__)
    try:
        available = lib.simt_profile_available
    except AttributeError:
        return None
    return lib if available() else None


def _profiled_module():
    """The profiling build of cucnn._sim: the loaded one if it is one, else $CUCNN_SIM_PROFILE_MODULE,
    else built from the source tree (scripts/sanitize.py profile: build/sanitize-profile, incremental)
    and loaded beside the plain one."""
    import importlib.util
    import pathlib
    import sys

    current = sim_module()
    if _profiling_library(current) is not None:
        return current
    path = os.environ.get("CUCNN_SIM_PROFILE_MODULE")
    if not path:
        # the source tree this package lives in, or the one we run in (an installed package)
        here, cwd = pathlib.Path(__file__).resolve(), pathlib.Path.cwd()
        script = next((d / "scripts" / "sanitize.py" for d in [*here.parents, cwd, *cwd.parents]
                       if (d / "scripts" / "sanitize.py").exists()), None)
        if script is None:
            raise RuntimeError("cucnn.sim.profile() needs the profiling build of cucnn._sim: set "
                               "CUCNN_SIM_PROFILE_MODULE to it, or run from a source tree "
                               "(python scripts/sanitize.py profile builds it)")
        spec = importlib.util.spec_from_file_location("_cucnn_sanitize", script)
        sanitize = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sanitize)
        path = str(sanitize.build("profile"))
    if path in _loaded_profiled:
        return _loaded_profiled[path]
    # A second extension module of the same name, under another package name: its PyInit__sim
    # is found by the last component.
    spec = importlib.util.spec_from_file_location("_cucnn_profiled._sim", path)
    if spec is None or not os.path.exists(path):
        raise ImportError(f"CUCNN_SIM_PROFILE_MODULE={path}: no such extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if _profiling_library(module) is None:
        raise RuntimeError(f"{path} is not a profiling build of cucnn._sim")
    sys.modules.setdefault("_cucnn_profiled._sim", module)
    _loaded_profiled[path] = module
    return module


_loaded_profiled: dict = {}


@contextlib.contextmanager
def profile():
    """Record every global and shared memory access the sim kernels make in the body::

        with cucnn.sim.profile() as prof:
            loss = F.cross_entropy(model(x), y); loss.backward()
        print(prof.table()); prof.records; prof.launches()

    Runs the body on the profiling build of cucnn._sim (slower; same results), with the current
    SIMT order and threads. See ``Profile`` for what is recorded."""
    import ctypes
    import json

    from . import _backend
    module = _profiled_module()
    lib = _profiling_library(module)
    lib.simt_profile_json.restype = ctypes.c_char_p
    prev = _backend._sim_module
    order_name, nthreads = prev.get_order(), prev.get_threads()
    module.set_order(order_name)
    module.set_threads(nthreads)
    prof = Profile()
    _backend._sim_module = module
    lib.simt_profile_start()
    try:
        yield prof
    finally:
        lib.simt_profile_stop()
        _backend._sim_module = prev
        prof.records = json.loads(lib.simt_profile_json().decode())["kernels"]
