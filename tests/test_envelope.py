"""Decoding responses: the envelope, errors in the body, counts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.api.envelope import MAX_PAGES, RawResponse, decode_count, decode_page
from exporter.errors import ApiError, RateLimited

NOW = 1_000_000.0


def ok(body: object, status: int = 200, headers: dict[str, str] | None = None) -> RawResponse:
    return RawResponse(status, headers or {}, json.dumps(body).encode())


def test_list_under_data() -> None:
    page = decode_page(
        "rbl/hosts",
        "hosts",
        ok({"status_code": 200, "page": 2, "total_pages": 3, "total": 250, "data": [{"id": "HT1"}]}),
        NOW,
    )
    assert (page.page, page.total_pages, page.total, page.items) == (2, 3, 250, ({"id": "HT1"},))


def test_list_under_the_resource_key_as_go_and_ruby_sdks_expect() -> None:
    page = decode_page(
        "rbl/hosts", "hosts", ok({"status_code": 200, "hosts": [{"id": "HT1"}], "total_hosts": 1}), NOW
    )
    assert page.items == ({"id": "HT1"},) and page.total_pages == 1 and page.total == 1


def test_body_status_code_is_an_error_even_on_http_200() -> None:
    with pytest.raises(ApiError) as info:
        decode_page(
            "rbl/hosts", "hosts", ok({"status_code": 500, "status_message": "Validation failure."}), NOW
        )
    assert (info.value.status, info.value.reason, info.value.detail) == (
        500,
        "server_error",
        "Validation failure.",
    )


@pytest.mark.parametrize(
    ("status", "reason"), [(401, "auth"), (403, "forbidden"), (404, "client_error"), (503, "server_error")]
)
def test_http_errors_map_to_bounded_reasons(status: int, reason: str) -> None:
    with pytest.raises(ApiError) as info:
        decode_page("rbl/hosts", "hosts", ok({"status_code": status, "status_message": "x"}, status), NOW)
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


@pytest.mark.parametrize("data", ["temporarily unavailable", 42, 1.5, True, {"id": "HT1"}])
def test_a_list_of_the_wrong_type_is_a_decode_error_not_an_empty_page(data: object) -> None:
    """Issue 7: `"data": "temporarily unavailable"` was read as an empty page, and every host
    disappeared from /metrics with no warning."""
    with pytest.raises(ApiError) as info:
        decode_page("rbl/hosts", "hosts", ok({"status_code": 200, "total": 20, "data": data}), NOW)
    assert info.value.reason == "decode" and "'data' is a" in info.value.detail


def test_a_single_object_is_a_page_only_where_one_is_expected() -> None:
    body = ok({"status_code": 200, "data": {"id": "HT1"}})
    assert decode_page("rbl/hosts/{id}", "hosts", body, NOW, single=True).items == ({"id": "HT1"},)
    with pytest.raises(ApiError, match="not a list or an object"):
        decode_page("rbl/hosts/{id}", "hosts", ok({"data": "gone"}), NOW, single=True)


def test_null_data_is_empty_only_when_nothing_says_there_is_more() -> None:
    assert decode_page("x", "hosts", ok({"data": None, "total": 0}), NOW).items == ()
    assert decode_page("x", "hosts", ok({"data": None}), NOW).items == ()
    with pytest.raises(ApiError, match="null but the total is 5"):
        decode_page("x", "hosts", ok({"data": None, "total": 5}), NOW)


def test_a_list_of_nothing_but_non_objects_is_a_decode_error() -> None:
    with pytest.raises(ApiError, match="none of the 3 list entries"):
        decode_page("x", "hosts", ok({"data": ["a", 1, None]}), NOW)
    page = decode_page("x", "hosts", ok({"data": [{"id": "HT1"}, "junk", 3]}), NOW)
    assert page.dropped == 2  # counted by the scheduler as parse warnings


@pytest.mark.parametrize(
    ("pages", "expected"),
    [
        (None, 1),
        (0, 1),
        (3, 3),
        ("3", 3),
        (3.0, 3),
        (MAX_PAGES, MAX_PAGES),
    ],
)
def test_total_pages_within_bounds(pages: object, expected: int) -> None:
    body = {"data": [{"id": "HT1"}]} | ({"total_pages": pages} if pages is not None else {})
    assert decode_page("x", "hosts", ok(body), NOW).total_pages == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"1" + b"0" * 400,
        b"1e9",
        b"1e400",
        b"-1e400",
        b"NaN",
        b"-1",
        b"2.5",
        b'"many"',
        b"true",
        b"[3]",
        b'"9999999999999999999999"',
        str(MAX_PAGES + 1).encode(),
    ],
)
def test_an_absurd_total_pages_is_a_decode_error(raw: bytes) -> None:
    """A total_pages of 10**400 or 1e9 must not make the scheduler page forever."""
    body = b'{"status_code": 200, "data": [{"id": "HT1"}], "total_pages": ' + raw + b"}"
    with pytest.raises(ApiError) as info:
        decode_page("x", "hosts", RawResponse(200, {}, body), NOW)
    assert info.value.reason == "decode" and "total_pages" in info.value.detail


@pytest.mark.parametrize(
    "value",
    [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"1e400",
        b"true",
        b"false",
        b"1" + b"0" * 400,
        b'"\\ud800"',
        b"[1]",
        b"{}",
    ],
)
def test_odd_values_in_the_envelope_never_crash(value: bytes) -> None:
    body = b'{"status_code": %s, "status_message": %s, "page": %s, "total": %s, "data": []}' % (
        value,
        value,
        value,
        value,
    )
    page = decode_page("x", "hosts", RawResponse(200, {}, body), NOW)
    assert page.items == () and page.page == 1
    assert page.total is None


@pytest.mark.parametrize("message", ["x" * 5000, "\ud800 lone", "line\nbreak\x00nul", "é" * 300])
def test_error_text_is_short_printable_and_encodable(message: str) -> None:
    with pytest.raises(ApiError) as info:
        decode_page("x", "hosts", ok({"status_code": 500, "status_message": message}, 500), NOW)
    detail = info.value.detail
    assert len(detail) <= 200 and detail.isprintable()
    detail.encode("utf-8")
    assert str(info.value).encode("utf-8")


def test_deeply_nested_bodies_are_decode_errors_not_crashes() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ApiError) as info:
        decode_page("x", "hosts", RawResponse(200, {}, deep), NOW)
    assert info.value.reason == "decode"
    with pytest.raises(ApiError) as info:
        decode_page("x", "hosts", RawResponse(500, {}, deep), NOW)  # the error body, too
    assert info.value.reason == "server_error"
    with pytest.raises(ApiError):
        decode_count("c", RawResponse(200, {}, deep), NOW)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_failed_polls(status: int) -> None:
    with pytest.raises(ApiError) as info:
        decode_page("x", "hosts", ok({}, status, {"Location": "https://elsewhere.test/\ud800"}), NOW)
    assert info.value.reason == "redirect" and info.value.status == status
    assert "elsewhere.test" in info.value.detail and info.value.detail.encode("utf-8")
    with pytest.raises(ApiError) as info:
        decode_count("c", ok({}, status), NOW)
    assert info.value.reason == "redirect"


@pytest.mark.parametrize(
    "body",
    [
        b"inf",
        b"nan",
        b"Infinity",
        b"NaN",
        b"1e400",
        b"-3",
        b"2.5",
        b"true",
        b"9" * 400,
        b"1e300",
        b"",
        b'{"count": "inf"}',
        b'{"count": -1}',
        b'{"count": true}',
        b'{"total": [4]}',
        b"\xff\xfe",
        b'"\\ud800"',
    ],
)
def test_counts_that_are_not_counts_are_decode_errors(body: bytes) -> None:
    with pytest.raises(ApiError) as info:
        decode_count("rbl/listings/count", RawResponse(200, {}, body), NOW)
    assert info.value.reason == "decode"
    info.value.detail.encode("utf-8")


def test_counts_in_every_readable_form() -> None:
    for body, expected in (
        (b"0", 0),
        (b" 42 \n", 42),
        (b"42.0", 42),
        (b'{"count": "3"}', 3),
        (b'{"status_code": 200, "total": 7}', 7),
        (b'{"data": 5}', 5),
    ):
        assert decode_count("c", RawResponse(200, {}, body), NOW) == expected


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "data",
                    "hosts",
                    "total",
                    "total_pages",
                    "page",
                    "status_code",
                    "status_message",
                    "count",
                    "id",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@given(JSON, st.integers(100, 599), st.booleans())
def test_any_json_body_decodes_or_is_an_api_error(body: object, status: int, single: bool) -> None:
    raw = json.dumps(body).encode()
    for decode in (
        lambda r: decode_page("x", "hosts", r, NOW, single=single),
        lambda r: decode_count("c", r, NOW),
    ):
        try:
            decode(RawResponse(status, {}, raw))
        except ApiError as err:
            str(err).encode("utf-8")
