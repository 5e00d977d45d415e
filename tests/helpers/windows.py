"""Counting requests in rolling windows, for the budget tests (pure)."""

from exporter.polling.ledger import WINDOW


def max_in_any_window(times: list[float], window: float = WINDOW) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
