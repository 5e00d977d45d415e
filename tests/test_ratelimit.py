"""RateLimit-* and Retry-After header parsing."""

from __future__ import annotations

import pytest

from exporter.api.ratelimit import from_headers, parse_policies, retry_after

NOW = 1_000_000.0


def test_policies_and_remaining_are_read() -> None:
    limit = from_headers(
        {"RateLimit-Limit": "1000;w=3600, 100;w=1", "RateLimit-Remaining": "742", "RateLimit-Reset": "1800"},
        NOW,
    )
    assert limit is not None
    assert limit.policies == ((1000, 3600), (100, 1))
    assert limit.remaining == 742
    assert limit.reset_at == NOW + 1800


def test_header_names_are_case_insensitive() -> None:
    limit = from_headers({"ratelimit-remaining": "5"}, NOW)
    assert limit is not None and limit.remaining == 5


def test_no_headers_means_no_information() -> None:
    assert from_headers({"Content-Type": "application/json"}, NOW) is None


def test_garbage_values_are_ignored_not_fatal() -> None:
    limit = from_headers({"RateLimit-Remaining": "many", "RateLimit-Limit": "x"}, NOW)
    assert limit is not None and limit.remaining is None and limit.policies == ()
    assert parse_policies("1000") == ((1000, 0),)


def test_retry_after_seconds_date_default_and_cap() -> None:
    assert retry_after({"Retry-After": "120"}, NOW) == 120
    assert retry_after({"Retry-After": "Thu, 01 Jan 1970 12:00:00 GMT"}, 43_000.0) == 200
    assert retry_after({}, NOW) == 60
    assert retry_after({"Retry-After": "99999"}, NOW) == 3600  # never more than an hour
    assert retry_after({"Retry-After": "0"}, NOW) == 1


EPOCH_NOW = 1_790_000_000.0  # a real "now": epoch-form resets are larger than ten years of seconds


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400", "9" * 400, "1e30", "-5", "\ud800"])
def test_an_unusable_remaining_is_ignored_never_fatal(value: str) -> None:
    limit = from_headers({"RateLimit-Remaining": value, "RateLimit-Reset": "60"}, NOW)
    assert limit is not None and limit.remaining is None and limit.reset_at == NOW + 60


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        ("1800", 1800.0),  # delta seconds
        ("99999", 3600.0),  # a delta beyond the hourly window: capped
        ("99999999999", 3600.0),  # the value: an epoch in the year 5138, capped
        (str(int(EPOCH_NOW) + 600), 600.0),  # an epoch time: read as one
        (str(int(EPOCH_NOW) - 600), 0.0),  # an epoch in the past: the reset is now
        ("1e300", 3600.0),
        ("0", 0.0),
    ],
)
def test_reset_is_read_as_delta_or_epoch_and_capped_at_an_hour(reset: str, expected: float) -> None:
    limit = from_headers({"RateLimit-Remaining": "0", "RateLimit-Reset": reset}, EPOCH_NOW)
    assert limit is not None and limit.reset_at == EPOCH_NOW + expected


@pytest.mark.parametrize("reset", ["inf", "nan", "-1", "soon", "1e400"])
def test_an_unusable_reset_is_ignored(reset: str) -> None:
    limit = from_headers({"RateLimit-Remaining": "0", "RateLimit-Reset": reset}, EPOCH_NOW)
    assert limit is not None and limit.reset_at is None and limit.remaining == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("inf", 60.0),
        ("nan", 60.0),
        ("1e400", 60.0),
        ("-5", 60.0),
        ("9" * 400, 60.0),
        ("1e300", 3600.0),
        ("Fri, 01 Jan 9999 00:00:00 GMT", 3600.0),
        ("Thu, 01 Jan 99999 12:00:00 GMT", 60.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 1.0),
        ("x" * 5000, 60.0),
    ],
)
def test_retry_after_never_raises_and_never_exceeds_an_hour(value: str, expected: float) -> None:
    assert retry_after({"Retry-After": value}, EPOCH_NOW) == expected


def test_absurd_policies_are_left_out() -> None:
    assert parse_policies("9" * 5000) == ()
    assert parse_policies("1000;w=3600, 99999999999999;w=1, x") == ((1000, 3600),)
    assert parse_policies("\u0661\u0662;w=1") == ()  # non-ASCII digits are not a number here


BOTH = "1000;w=3600, 100;w=1"


@pytest.mark.parametrize(
    ("remaining", "reset", "window"),
    [
        ("97", "1", 1),  # the demo's usual answer: the per-second window
        ("0", "1", 1),
        ("940", "1", 3600),  # more left than a second allows: the hour, even with a reset 1 s ahead
        ("50", "1200", 3600),  # a reset 20 min ahead cannot be the per-second window
        ("1000", "3600", 3600),
    ],
)
def test_the_window_is_the_smallest_policy_that_explains_remaining_and_reset(
    remaining: str, reset: str, window: int
) -> None:
    limit = from_headers(
        {"RateLimit-Limit": BOTH, "RateLimit-Remaining": remaining, "RateLimit-Reset": reset}, NOW
    )
    assert limit is not None and limit.window == window


def test_the_window_holds_for_epoch_size_clocks() -> None:
    """reset_at - observed_at at today's epoch is not exactly 1.0; still the per-second window."""
    headers = {"RateLimit-Limit": BOTH, "RateLimit-Remaining": "96", "RateLimit-Reset": "1"}
    for now in (1_790_000_000.123, 1_790_000_000.7, 2_000_000_000.9):
        limit = from_headers(headers, now)
        assert limit is not None and limit.window == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"RateLimit-Remaining": "5", "RateLimit-Reset": "1"},  # no policies at all
        {"RateLimit-Limit": BOTH, "RateLimit-Remaining": "5000"},  # more than any policy allows
        {"RateLimit-Limit": "100", "RateLimit-Remaining": "5"},  # a policy without a window
    ],
)
def test_values_no_policy_explains_have_no_window(headers: dict[str, str]) -> None:
    limit = from_headers(headers, NOW)
    assert limit is not None and limit.window is None
