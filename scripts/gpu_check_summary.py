"""The summary table of a scripts/gpu_check.sh results folder.

    python scripts/gpu_check_summary.py RESULTS_DIR      # writes RESULTS_DIR/summary.md and .json

Reads what the steps left (each part may be missing: a step that failed or timed out is reported
as such): steps.tsv (step, status, seconds), machine.txt, tests.xml (JUnit from pytest),
ops-cuda-full.json (benchmarks/ops.py), train-step.json (benchmarks/train_step.py) and
train-lenet5/metrics.json (cucnn train). Ratios are "× cuDNN": cuDNN's time / ours, above 1 means
cucnn is faster; per op and direction the median over the suite's shapes.
"""
from __future__ import annotations

import json
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

BASE = "torch-cudnn"
TF32 = "torch-cudnn-tf32"
OURS = "cucnn"


def read_steps(out: Path) -> list:
    path = out / "steps.tsv"
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()[1:]
    rows = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) >= 3:
            rows.append({"step": parts[0], "status": parts[1], "seconds": int(parts[2])})
    return rows


def read_machine(out: Path) -> dict:
    path = out / "machine.txt"
    if not path.is_file():
        return {}
    pairs = (line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def read_tests(out: Path) -> dict | None:
    path = out / "tests.xml"
    if not path.is_file():
        return None
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for s in suites:
        for k in total:
            total[k] += int(s.get(k, 0))
        for case in s.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    total["passed"] = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    total["failed_names"] = failed
    return total


def ops_ratios(out: Path) -> dict | None:
    """Per (op, direction): median over shapes of cuDNN (TF32 off) ms / cucnn ms and of cuDNN
    TF32 ms / cucnn ms, the shape count and the mismatches."""
    path = out / "ops-cuda-full.json"
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())["rows"]
    by_case = {}
    for r in rows:
        by_case.setdefault((r["op"], r["direction"], r["shape"]), {})[r["impl"]] = r
    table = {}
    for (op, direction, _shape), impls in by_case.items():
        t = table.setdefault((op, direction), {"vs_cudnn": [], "vs_tf32": [], "shapes": 0,
                                               "mismatches": 0})
        t["shapes"] += 1
        t["mismatches"] += sum(1 for r in impls.values()
                               if str(r.get("check", "")).startswith("MISMATCH"))
        ours = impls.get(OURS, {}).get("ms")
        if not ours:
            continue
        if impls.get(BASE, {}).get("ms"):
            t["vs_cudnn"].append(impls[BASE]["ms"] / ours)
        if impls.get(TF32, {}).get("ms"):
            t["vs_tf32"].append(impls[TF32]["ms"] / ours)
    result = {}
    for (op, direction), t in sorted(table.items()):
        result[f"{op} {direction}"] = {
            "shapes": t["shapes"], "mismatches": t["mismatches"],
            "median_vs_cudnn": statistics.median(t["vs_cudnn"]) if t["vs_cudnn"] else None,
            "median_vs_cudnn_tf32": statistics.median(t["vs_tf32"]) if t["vs_tf32"] else None,
        }
    return result


def train_steps(out: Path) -> list | None:
    path = out / "train-step.json"
    if not path.is_file():
        return None
    steps = json.loads(path.read_text())["steps"]
    rows = []
    for s in steps:
        if s.get("impl") != "cucnn":
            continue
        torch = next((t for t in steps if t.get("impl") == "torch" and
                      t["device"] == s["device"] and t["batch"] == s["batch"]), None)
        rows.append({"device": s["device"], "batch": s["batch"], "ms": s["ms"],
                     "torch_ms": torch["ms"] if torch else None,
                     "vs_torch": torch["ms"] / s["ms"] if torch else None})
    return rows


def training(out: Path) -> dict | None:
    path = out / "train-lenet5" / "metrics.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    return {"epochs": len(m.get("epochs", [])), "test_acc": m.get("test_acc"),
            "train_seconds": m.get("train_seconds"), "device": m.get("device"),
            "interrupted": bool(m.get("interrupted"))}


def _x(v) -> str:
    return "—" if v is None else f"{v:.2f}×"


def summarize(out: Path) -> dict:
    return {"machine": read_machine(out), "steps": read_steps(out), "tests": read_tests(out),
            "ops": ops_ratios(out), "train_step": train_steps(out), "training": training(out)}


def markdown(s: dict) -> str:
    m = s["machine"]
    lines = ["# gpu_check summary", ""]
    if m:
        lines += [f"{m.get('gpu', '?')} (compute capability {m.get('compute_capability', '?')}), "
                  f"driver {m.get('driver', '?')}, nvcc {m.get('nvcc', '?')}, commit "
                  f"{m.get('commit', '?')}, {m.get('date', '?')}", ""]
    lines += ["## Steps", "", "| step | status | seconds |", "|---|---|---:|"]
    lines += [f"| {r['step']} | {r['status']} | {r['seconds']} |" for r in s["steps"]]
    if s["steps"]:
        lines.append(f"| total | | {sum(r['seconds'] for r in s['steps'])} |")
    else:
        lines.append("| (no steps.tsv) | | |")
    lines += ["", "## Tests (pytest -m cuda)", ""]
    t = s["tests"]
    if t is None:
        lines.append("no tests.xml: the test step did not run or crashed")
    else:
        lines.append(f"{t['passed']} passed, {t['failures']} failed, {t['errors']} errors, "
                     f"{t['skipped']} skipped (of {t['tests']})")
        lines += [f"- FAILED {n}" for n in t["failed_names"][:30]]
    lines += ["", "## Ops against cuDNN (median over shapes; above 1× cucnn is faster)", ""]
    if s["ops"] is None:
        lines.append("no ops-cuda-full.json: the ops step did not finish")
    else:
        lines += ["| op direction | shapes | × cuDNN (TF32 off) | × cuDNN (TF32 on) | mismatches |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {k} | {v['shapes']} | {_x(v['median_vs_cudnn'])} | "
                  f"{_x(v['median_vs_cudnn_tf32'])} | {v['mismatches']} |"
                  for k, v in s["ops"].items()]
    lines += ["", "## LeNet-5 training step (forward, loss, backward, Adam)", ""]
    if s["train_step"] is None:
        lines.append("no train-step.json: the train_step step did not finish")
    else:
        lines += ["| device | batch | cucnn ms | PyTorch ms | × PyTorch |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['device']} | {r['batch']} | {r['ms']:.3f} | "
                  f"{'—' if r['torch_ms'] is None else format(r['torch_ms'], '.3f')} | "
                  f"{_x(r['vs_torch'])} |" for r in s["train_step"]]
        cuda = {r["batch"]: r["ms"] for r in s["train_step"] if r["device"] == "cuda"}
        cpu = {r["batch"]: r["ms"] for r in s["train_step"] if r["device"] == "cpu"}
        for b in sorted(set(cuda) & set(cpu)):
            lines.append(f"\nbatch {b}: cuda step {cpu[b] / cuda[b]:.1f}× faster than cpu")
    lines += ["", "## LeNet-5 on Fashion-MNIST (cuda)", ""]
    tr = s["training"]
    if tr is None:
        lines.append("no train-lenet5/metrics.json: the train step did not finish")
    else:
        acc = "—" if tr["test_acc"] is None else f"{100 * tr['test_acc']:.2f}%"
        secs = "—" if tr["train_seconds"] is None else f"{tr['train_seconds']:.1f} s"
        lines.append(f"{tr['epochs']} epochs on {tr['device']}: test accuracy {acc}, training "
                     f"{secs}" + (" (interrupted)" if tr["interrupted"] else ""))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(argv) != 1 else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    out = Path(argv[0])
    if not out.is_dir():
        print(f"gpu_check_summary: {out} is not a directory", file=sys.stderr)
        return 2
    s = summarize(out)
    (out / "summary.json").write_text(json.dumps(s, indent=2))
    text = markdown(s)
    (out / "summary.md").write_text(text)
    print(text, end="")
    bad = any(r["status"] != "ok" for r in s["steps"]) or \
        (s["tests"] is not None and (s["tests"]["failures"] or s["tests"]["errors"]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
