"""What the benchmarks share: one target check, medians with their range, quick mode."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from typing import Any

#: ``BENCH_QUICK=1`` (``run.py --quick``): the smaller sizes only, fewer rounds.
QUICK_ENV = "BENCH_QUICK"


def quick() -> bool:
    return os.environ.get(QUICK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def summary(values: list[float], digits: int = 3) -> list[float]:
    """[median, min, max] of ``values``."""
    return [
        round(statistics.median(values), digits),
        round(min(values), digits),
        round(max(values), digits),
    ]


@dataclass
class Check:
    """One measured figure against its target: ``value op limit``."""

    name: str
    value: float
    op: str  # "<=", "<", ">=" or ">"
    limit: float
    #: [min, max] of the rounds behind the median ``value``, when there are rounds.
    spread: list[float] | None = None

    @classmethod
    def of(cls, name: str, values: list[float], op: str, limit: float) -> Check:
        """A check of a :func:`summary` (its median against the limit)."""
        return cls(name, values[0], op, limit, list(values[1:]))

    @property
    def ok(self) -> bool:
        return {
            "<=": self.value <= self.limit,
            "<": self.value < self.limit,
            ">=": self.value >= self.limit,
            ">": self.value > self.limit,
        }[self.op]

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "value": round(self.value, 3),
            "range": self.spread,
            "target": f"{self.op} {self.limit:g}",
            "ok": self.ok,
        }


def with_checks(out: dict[str, Any], checks: list[Check]) -> dict[str, Any]:
    """``out`` with what run.py reads: every check, the first one's value as ``ratio``,
    and ``target_ok`` when all pass."""
    out["checks"] = [c.as_dict() for c in checks]
    out["ratio"] = checks[0].value
    out["target_ok"] = all(c.ok for c in checks)
    return out
