"""Pure: the request ledger. Decides when the next API request may be sent.

Guarantees, for any `now` the caller passes:
- no rolling window of `window` seconds holds more than `per_hour` recorded requests
  (a send is allowed only while fewer than `per_hour` sends lie in (now - window, now]);
- consecutive sends are at least 1 / per_second apart;
- nothing is sent before a 429's Retry-After has passed;
- when the server reports fewer remaining requests than we think we have (other clients share
  the API application's quota), sends are spread so they fit before its reset;
- when the server reports none left, nothing is sent before its reset, and `backoff_until`
  (the backoff self-metric) shows that wait;
- no wait the server can impose lasts longer than RETRY_AFTER_CAP (one hour).

The server's observations are also kept per rate-limit window (`by_window`, keyed by the window
in seconds that `RateLimit.window` infers, None when no policy explains the values): the
self-metrics show each window's last word. The decisions above use the latest observation,
whatever its window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from exporter.api.ratelimit import HOURLY_WINDOW, RETRY_AFTER_CAP, RateLimit

# The hourly window: the budget counts requests per rolling hour, as the API's own limit does
# (its RateLimit-Policy header says `w=3600`). Every hour-long span in polling/ is this constant.
WINDOW = HOURLY_WINDOW
# Windows whose last observation is kept (the API has two; absurd headers could name any number):
# past this, the window heard of longest ago is dropped, so the `window` label stays bounded.
MAX_WINDOWS = 4


class Ledger:
    def __init__(
        self,
        per_hour: int,
        per_second: float,
        *,
        window: float = WINDOW,
        sent: Iterable[float] = (),
    ) -> None:
        self.per_hour = per_hour
        self.per_second = per_second
        self.window = window
        self._sent: deque[float] = deque(sorted(sent))
        self.backoff_until = 0.0
        self.server: RateLimit | None = None  # the latest observation, whatever its window
        self.by_window: dict[int | None, RateLimit] = {}  # the latest observation of each window
        self._sent_since_observed = 0

    # -- what happened ----------------------------------------------------------------------

    def record(self, now: float) -> None:
        """A request is being sent at `now`."""
        self._sent.append(now)
        self._sent_since_observed += 1

    def observe(self, limit: RateLimit) -> None:
        """The server's RateLimit-* headers from a response; they include every send so far.
        None left means a wait until its reset (at most an hour), shown as backoff_until."""
        self.server = limit
        self.by_window[limit.window] = limit
        if len(self.by_window) > MAX_WINDOWS:
            others = [w for w in self.by_window if w != limit.window]
            oldest = min(others, key=lambda w: self.by_window[w].observed_at)
            del self.by_window[oldest]
        self._sent_since_observed = 0
        reset_at = self._server_reset()
        if limit.remaining is not None and limit.remaining <= 0 and reset_at is not None:
            self.backoff_until = max(self.backoff_until, reset_at)

    def rate_limited(self, now: float, retry_after: float) -> None:
        """A 429: stop everything until Retry-After (capped at one hour) has passed."""
        wait = retry_after if math.isfinite(retry_after) else RETRY_AFTER_CAP
        self.backoff_until = max(self.backoff_until, now + min(max(wait, 0.0), RETRY_AFTER_CAP))

    # -- what may happen --------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

    def used(self, now: float) -> int:
        """Requests recorded in the last `window` seconds."""
        self._expire(now)
        return len(self._sent)

    def server_remaining(self, now: float) -> int | None:
        """The server's remaining count minus what we sent since it told us, until its reset."""
        s = self.server
        reset_at = self._server_reset()
        if s is None or s.remaining is None or (reset_at is not None and now >= reset_at):
            return None
        return s.remaining - self._sent_since_observed

    def _server_reset(self) -> float | None:
        """The server's reset time; a RateLimit built by hand may carry any, so cap it here too."""
        s = self.server
        if s is None or s.reset_at is None:
            return None
        return min(s.reset_at, s.observed_at + RETRY_AFTER_CAP)

    def next_allowed(self, now: float) -> float:
        """The earliest time >= now at which one more request may be sent."""
        self._expire(now)
        at = max(now, self.backoff_until)
        if len(self._sent) >= self.per_hour:
            # the oldest send that must leave the window before one more fits
            at = max(at, self._sent[len(self._sent) - self.per_hour] + self.window)
        if self._sent and self.per_second > 0:
            at = max(at, self._sent[-1] + 1.0 / self.per_second)
        server_left = self.server_remaining(now)
        reset_at = self._server_reset()
        if server_left is not None and reset_at:
            own_left = self.per_hour - len(self._sent)
            if server_left <= 0:
                at = max(at, reset_at)
            elif server_left < own_left and self._sent:
                spacing = (reset_at - now) / server_left
                at = max(at, self._sent[-1] + spacing)
        return at
