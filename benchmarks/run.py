"""Benchmark runner: each benchmark reports a ratio against a baseline measured in the
same run, and whether it meets its target.

    python3 benchmarks/run.py            # every benchmark
    python3 benchmarks/run.py startup    # the named ones
    python3 benchmarks/run.py --json     # machine-readable

Benchmarks live in ``benchmarks/bench_*.py``; each defines ``NAME``, ``TARGET`` (text) and
``run() -> dict`` returning at least ``ratio``, ``target_ok`` and the measured numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, object]:
    found = {}
    for path in sorted(HERE.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(module)
        found[module.NAME] = module
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args()
    benches = discover()
    unknown = [n for n in args.names if n not in benches]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(benches)}")
    results = {}
    for name in args.names or list(benches):
        module = benches[name]
        if not args.json:
            print(f"== {name}: {module.TARGET}", flush=True)
        result = module.run()
        results[name] = result
        if not args.json:
            for key, value in result.items():
                shown = f"{value:.4g}" if isinstance(value, float) else value
                print(f"   {key}: {shown}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if all(r.get("target_ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
