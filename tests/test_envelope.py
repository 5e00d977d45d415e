"""Decoding responses: the envelope, errors in the body, counts."""

from __future__ import annotations

import json

import pytest

from exporter.envelope import RawResponse, decode_count, decode_page
from exporter.errors import ApiError, RateLimited

NOW = 1_000_000.0


def ok(body: object, status: int = 200, headers: dict[str, str] | None = None) -> RawResponse:
    return RawResponse(status, headers or {}, json.dumps(body).encode())


def test_list_under_data() -> None:
    page = decode_page("rbl/hosts", "hosts", ok({"status_code": 200, "page": 2, "total_pages": 3,
                                                  "total": 250, "data": [{"id": "HT1"}]}), NOW)
    assert (page.page, page.total_pages, page.total, page.items) == (2, 3, 250, ({"id": "HT1"},))


def test_list_under_the_resource_key_as_go_and_ruby_sdks_expect() -> None:
    page = decode_page("rbl/hosts", "hosts", ok({"status_code": 200, "hosts": [{"id": "HT1"}],
                                                  "total_hosts": 1}), NOW)
    assert page.items == ({"id": "HT1"},) and page.total_pages == 1 and page.total == 1


def test_body_status_code_is_an_error_even_on_http_200() -> None:
    with pytest.raises(ApiError) as info:
        decode_page("rbl/hosts", "hosts", ok({"status_code": 500,
                                               "status_message": "Validation failure."}), NOW)
    assert (info.value.status, info.value.reason, info.value.detail) == (
        500, "server_error", "Validation failure.")


@pytest.mark.parametrize(("status", "reason"), [(401, "auth"), (403, "forbidden"),
                                                 (404, "client_error"), (503, "server_error")])
def test_http_errors_map_to_bounded_reasons(status: int, reason: str) -> None:
    with pytest.raises(ApiError) as info:
        decode_page("rbl/hosts", "hosts", ok({"status_code": status, "status_message": "x"},
                                              status), NOW)
    assert info.value.reason == reason


def test_429_carries_retry_after() -> None:
    with pytest.raises(RateLimited) as info:
        decode_page("rbl/hosts", "hosts", ok({}, 429, {"Retry-After": "1800"}), NOW)
    assert info.value.retry_after == 1800


@pytest.mark.parametrize("body", [b'{"data": [', b"<html>oops</html>", b"[1, 2]", b'{"x": 1}'])
def test_malformed_bodies_are_decode_errors(body: bytes) -> None:
    with pytest.raises(ApiError) as info:
        decode_page("rbl/hosts", "hosts", RawResponse(200, {}, body), NOW)
    assert info.value.reason == "decode"


def test_non_object_items_are_dropped() -> None:
    page = decode_page("x", "hosts", ok({"data": [{"id": "HT1"}, "junk", 3]}), NOW)
    assert page.items == ({"id": "HT1"},)


def test_count_endpoints_answer_a_bare_number() -> None:
    assert decode_count("rbl/listings/count", RawResponse(200, {}, b"17\n"), NOW) == 17
    assert decode_count("c", ok({"status_code": 200, "count": 4}), NOW) == 4
    with pytest.raises(ApiError, match="not a number"):
        decode_count("c", RawResponse(200, {}, b"lots"), NOW)
    with pytest.raises(ApiError) as info:
        decode_count("c", ok({"status_code": 401, "status_message": "Authentication failed."}), NOW)
    assert info.value.reason == "auth"
