"""The signature check on its own: every hostile header is a SignatureError with a bounded reason
(never a TypeError, ValueError or OverflowError), and honest headers verify."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.webhooks.signature import MAX_HEADER, SignatureError, sign, verify

SECRET = "whsec_test_secret_value"
NOW = 1_790_000_000
BODY = b'{"event_sid": "TA00"}'
GOOD = sign(BODY, SECRET, NOW)
HEX = GOOD.split("v1=")[1]


def reason(header: str | None, body: bytes = BODY) -> str:
    with pytest.raises(SignatureError) as info:
        verify(header, body, [SECRET], now=NOW)
    return info.value.reason


def test_an_honest_header_verifies_with_any_current_secret() -> None:
    assert verify(GOOD, BODY, ["other_secret", SECRET], now=NOW).signature == HEX
    upper = f"t={NOW},v1={HEX.upper()}"  # hex digits in either case
    assert verify(upper, BODY, [SECRET], now=NOW).signature == HEX
    rotated = f"t={NOW},v1={'0' * 64},v1={HEX}"  # two signatures during a rotation
    assert verify(rotated, BODY, [SECRET], now=NOW).signature == HEX


@pytest.mark.parametrize(
    "header",
    [
        f"t={NOW},v1=\u00e9",  # non-ASCII: hmac.compare_digest raises TypeError on str
        f"t={NOW},v1={HEX[:-1]}\u00e9",
        f"t=\u00b2,v1={HEX}",  # "²".isdigit() is True and int("²") raises
        f"t={'9' * 400},v1={HEX}",  # a 400-digit time
        f"t=,v1={HEX}",
        f"t={NOW},v1=",
        ",,,,",
        "=",
        f"t={NOW}",
        f"v1={HEX}",
        f"t={NOW},t={NOW},v1={HEX}",
        f"t={NOW},v1={HEX}0",
        f"t={NOW},v1={'g' * 64}",
        f"t=-{NOW},v1={HEX}",
        f"t={NOW}.5,v1={HEX}",
        f"t={NOW}," + ",".join(f"v1={HEX}" for _ in range(9)),
        f"t={NOW},v1={HEX}," + "x" * MAX_HEADER,  # a huge header
    ],
)
def test_hostile_headers_are_malformed_before_any_secret_is_used(header: str) -> None:
    assert reason(header) == "malformed_signature"


def test_missing_stale_and_wrong_signatures_keep_their_reasons() -> None:
    assert reason(None) == "missing_signature"
    assert reason("") == "missing_signature"
    assert reason(sign(BODY, SECRET, NOW - 301)) == "stale_timestamp"
    assert reason(GOOD, BODY + b" ") == "bad_signature"
    assert reason(sign(BODY, "not_the_secret", NOW)) == "bad_signature"


@given(
    header=st.text(max_size=300)
    | st.builds(lambda t, v: f"t={t},v1={v}", st.text(max_size=20), st.text(max_size=80))
)
def test_any_header_is_verified_or_refused_with_a_reason(header: str) -> None:
    try:
        verify(header, BODY, [SECRET], now=NOW)
    except SignatureError as err:
        got = err.reason
    else:
        got = "verified"  # only a real signature over BODY could get here
    assert got in {"missing_signature", "malformed_signature", "stale_timestamp", "bad_signature"}
