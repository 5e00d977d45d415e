"""Counting requests in rolling windows, for the budget tests."""


def max_in_any_window(times: list[float], window: float = 3600.0) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
