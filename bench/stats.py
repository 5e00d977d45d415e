"""Summaries of repeated measurements: the median and the spread (p10/p90, min/max) of a list of
timings or rates, nearest-rank quantiles, and a timer that repeats a call. No I/O."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

MS = 1000.0  # milliseconds per second


def quantile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank `q` quantile (0..1) of `ordered`, which must be sorted and not empty."""
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> dict[str, float]:
    """runs, median, p10, p90, p99, min and max of `values`, each multiplied by `scale` (MS turns
    seconds into milliseconds) and rounded to `digits`."""
    if not values:
        raise ValueError("no values to summarise")
    ordered = sorted(values)
    n = len(ordered)
    middle = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2

    def r(v: float) -> float:
        return round(v * scale, digits)

    return {
        "runs": n,
        "median": r(middle),
        "p10": r(quantile(ordered, 0.1)),
        "p90": r(quantile(ordered, 0.9)),
        "p99": r(quantile(ordered, 0.99)),
        "min": r(ordered[0]),
        "max": r(ordered[-1]),
    }


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds each of `repeat` calls of `fn` took, one after the other."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def ratio(numerator: Sequence[float], denominator: Sequence[float], digits: int = 1) -> float:
    """The ratio of the medians of two measurements (e.g. baseline time / our time)."""
    return round(spread(numerator)["median"] / spread(denominator, digits=9)["median"], digits)
