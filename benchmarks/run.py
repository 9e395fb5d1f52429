"""Benchmark runner: each benchmark reports ratios against baselines measured in the
same run, each with its target; the exit status is 1 when any target is missed.

    python3 benchmarks/run.py            # every benchmark
    python3 benchmarks/run.py startup    # the named ones
    python3 benchmarks/run.py --quick    # smaller sizes, fewer rounds (BENCH_QUICK=1)
    python3 benchmarks/run.py --json     # machine-readable

Benchmarks live in ``benchmarks/bench_*.py``; each defines ``NAME``, ``TARGET`` (text) and
``run() -> dict`` returning at least ``ratio`` and ``target_ok``, and ``checks`` (one
``{name, value, range, target, ok}`` per target) where it has several.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the benchmarks' shared helpers

from bench_util import QUICK_ENV  # noqa: E402


def discover() -> dict[str, object]:
    found = {}
    for path in sorted(HERE.glob("bench_*.py")):
        if path.stem == "bench_util":
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(module)
        found[module.NAME] = module
    return found


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, float) for v in value):
        return f"{value[0]:.4g} ({value[1]:.4g}-{value[2]:.4g})"  # median (min-max)
    return str(value)


def _print(name: str, module: object, result: dict, seconds: float) -> None:
    for key, value in result.items():
        if key in ("checks", "ratio", "target_ok"):
            continue
        if isinstance(value, dict):
            print(f"   {key}:")
            for k, v in value.items():
                print(f"      {k}: {_show(v)}")
        else:
            print(f"   {key}: {_show(value)}")
    checks = result.get("checks") or [
        {
            "name": f"ratio ({module.TARGET})",  # type: ignore[attr-defined]
            "value": result.get("ratio"),
            "range": None,
            "target": "",
            "ok": bool(result.get("target_ok")),
        }
    ]
    for check in checks:
        mark = "ok  " if check["ok"] else "MISS"
        spread = check.get("range")
        shown = _show(check["value"]) + (
            f" ({_show(spread[0])}-{_show(spread[1])})" if spread else ""
        )
        print(f"   [{mark}] {check['name']}: {shown} {check['target']}".rstrip())
    print(f"   ({name}: {seconds:.0f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--quick", action="store_true", help=f"smaller sizes, fewer rounds ({QUICK_ENV}=1)"
    )
    args = parser.parse_args()
    if args.quick:
        os.environ[QUICK_ENV] = "1"
    benches = discover()
    unknown = [n for n in args.names if n not in benches]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(benches)}")
    results = {}
    for name in args.names or list(benches):
        module = benches[name]
        if not args.json:
            print(f"== {name}: {module.TARGET}", flush=True)
        start = time.perf_counter()
        result = module.run()
        results[name] = result
        if not args.json:
            _print(name, module, result, time.perf_counter() - start)
            sys.stdout.flush()
    missed = [n for n, r in results.items() if not r.get("target_ok")]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"\n{len(results) - len(missed)} of {len(results)} benchmarks meet their targets")
        if missed:
            print(f"missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
