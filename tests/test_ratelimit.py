"""RateLimit-* and Retry-After header parsing."""

from __future__ import annotations

from exporter.ratelimit import from_headers, parse_policies, retry_after

NOW = 1_000_000.0


def test_policies_and_remaining_are_read() -> None:
    limit = from_headers({"RateLimit-Limit": "1000;w=3600, 100;w=1", "RateLimit-Remaining": "742",
                          "RateLimit-Reset": "1800"}, NOW)
    assert limit is not None
    assert limit.policies == ((1000, 3600), (100, 1))
    assert limit.hourly_limit == 1000
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
