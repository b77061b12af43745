"""Run every registered op, every case, every kernel version, on every device that is available,
and check each against the float64 oracle. ``python -m cucnn.demo`` or ``cucnn demo``."""
from __future__ import annotations

import time

import numpy as np

from . import available_devices, sim
from .ops import REGISTRY
from .testing import check_op_case


def run(devices=None, orders=("forward", "reverse", "random:1")) -> bool:
    devices = devices or available_devices()
    print(f"cucnn demo: every op against the float64 oracle on {', '.join(devices)}")
    print(f"{'op':<15}{'device':<12}{'cases':>6}{'failed':>8}{'seconds':>9}")
    ok = True
    for spec in REGISTRY.values():
        for device in devices:
            versions = spec.versions if device != "cpu" else (1,)
            for v in versions:
                label = device if device == "cpu" else f"{device}-v{v}"
                runs = orders if device == "sim" else (None,)
                start, failed, failures = time.perf_counter(), 0, []
                for case in spec.cases:
                    for order in runs:
                        try:
                            if order is None:
                                check_op_case(spec, case, device, v)
                            else:
                                with sim.order(order):
                                    check_op_case(spec, case, device, v)
                        except AssertionError as e:
                            failed += 1
                            failures.append(str(e))
                n = len(spec.cases) * len(runs)
                print(f"{spec.name:<15}{label:<12}{n:>6}{failed:>8}"
                      f"{time.perf_counter() - start:>9.2f}")
                for f in failures[:3]:
                    print("   ", f)
                ok &= failed == 0
    import cucnn
    import cucnn.functional as F
    logits = [1000.0, 1001.0, 1002.0]
    for device in devices:
        p = F.softmax(cucnn.tensor(logits, device=device)).numpy()
        print(f"softmax({logits}) on {device}: {np.array2string(p, precision=6)}")
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
