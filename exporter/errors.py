"""The exception tree. Messages name the key or URL, the problem and what was found. No I/O."""

from __future__ import annotations


class ExporterError(Exception):
    """Base class; the CLI turns these into one line on stderr and exit code 1."""


class ConfigError(ExporterError):
    """Every problem in a config at once; the CLI exits 2."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid config {source}:\n{lines}")


class StateError(ExporterError):
    """The state file cannot be used: in use by another process, a directory, not writable.
    One line naming the file and the problem; the CLI exits 1."""

    hint = ""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"state file {path}: {problem}{self.hint}")


class StateUnreadable(StateError):
    """The state file's content is broken or foreign (not SQLite, corrupt, another schema, a bad
    row). `state.if_unreadable: move_aside` renames it and starts fresh instead of refusing."""

    hint = "; to start fresh, move it away or set state.if_unreadable: move_aside"


class ApiError(ExporterError):
    """The API answered, but not with what we need (HTTP or body status_code >= 400, bad JSON)."""

    def __init__(self, endpoint: str, status: int | None, detail: str, reason: str) -> None:
        self.endpoint = endpoint
        self.status = status
        self.detail = detail
        # reason is one of a bounded set, used as a log field: auth, forbidden, rate_limited,
        # server_error, client_error, decode, network, timeout
        self.reason = reason
        code = status if status is not None else "no status"
        super().__init__(f"{endpoint}: {reason} ({code}): {detail}")


class RateLimited(ApiError):
    """A 429: no request may be sent until retry_after seconds have passed."""

    def __init__(self, endpoint: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(endpoint, 429, f"retry after {retry_after:g}s", "rate_limited")
