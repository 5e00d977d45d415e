"""Pure: verify Generator Labs' `X-Webhook-Signature: t=<unix>,v1=<hex>` (API reference,
"Webhook Verification"; the five official SDKs verify it the same way, with the 300 s tolerance
that is webhooks.tolerance's default, exporter.config.model.DEFAULT_SIGNATURE_TOLERANCE).

HMAC-SHA256 with the signing secret (UTF-8 bytes, as-is) over `"{t}." + raw body`, lowercase hex,
constant-time comparison of bytes. The header is read strictly before any secret is used: at
most MAX_HEADER characters, `t` of 1 to MAX_T_DIGITS ASCII digits ("²".isdigit() is True, so
isdigit() alone is not enough), each `v1` exactly 64 ASCII hex digits, nothing else. Anything
else is `malformed_signature`, never an exception from `int()` or `hmac.compare_digest` (which
raises TypeError on non-ASCII text). The timestamp check runs before the HMAC. Several secrets
may be valid at once (rotation; each portal webhook endpoint has its own).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.config.model import DEFAULT_SIGNATURE_TOLERANCE
from exporter.errors import ExporterError

DEFAULT_TOLERANCE = DEFAULT_SIGNATURE_TOLERANCE  # seconds; webhooks.tolerance in the config
MAX_HEADER = 1024  # characters: room for `t=` and a dozen v1 values during a rotation
MAX_T_DIGITS = 12  # a Unix time in seconds has 10 digits until the year 2286
MAX_SIGNATURES = 8  # v1 values in one header
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")  # matched with fullmatch on ASCII-checked text


MISSING, MALFORMED, STALE, BAD = (
    "missing_signature",
    "malformed_signature",
    "stale_timestamp",
    "bad_signature",
)
SIGNATURE_REASONS = (MISSING, MALFORMED, STALE, BAD)  # every SignatureError.reason


class SignatureError(ExporterError):
    """The webhook is not from Generator Labs, or too old (or new) to trust."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason  # one of SIGNATURE_REASONS
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Verified:
    signature: str  # the matching v1 value (lowercase hex), a replay-protection key


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The header value a sender computes (used by the simulator and the tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _malformed(why: str) -> SignatureError:
    return SignatureError(MALFORMED, f"malformed X-Webhook-Signature header: {why}")


def parse_header(header: str) -> tuple[int, list[bytes]]:
    """`t=..,v1=..` split on `,` then on the first `=`: the timestamp and every v1 (rotation may
    send two) as lowercase ASCII bytes. Unknown keys are ignored; a second `t`, an empty or
    oversized header, a non-digit `t` or a v1 that is not 64 hex digits is malformed."""
    if len(header) > MAX_HEADER:
        raise _malformed(f"over {MAX_HEADER} characters")
    if not header.isascii():
        raise _malformed("not ASCII")
    t: str | None = None
    v1: list[bytes] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        value = value.strip()
        if key == "t":
            if t is not None:
                raise _malformed("more than one t")
            t = value
        elif key == "v1":
            if not _HEX64.fullmatch(value):
                raise _malformed("v1 is not 64 hex digits")
            v1.append(value.lower().encode("ascii"))
    if t is None or not v1:
        raise _malformed("t and v1 are required")
    if len(v1) > MAX_SIGNATURES:
        raise _malformed(f"more than {MAX_SIGNATURES} v1 values")
    if not (0 < len(t) <= MAX_T_DIGITS and t.isdigit()):  # ASCII checked above
        raise _malformed("timestamp is not a number of seconds")
    return int(t), v1


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Verified:
    if not header:
        raise SignatureError(MISSING, "missing X-Webhook-Signature header")
    timestamp, candidates = parse_header(header)
    if tolerance > 0 and abs(now - timestamp) > tolerance:
        raise SignatureError(STALE, f"timestamp outside the {tolerance:g}s window")
    message = f"{timestamp}.".encode() + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().encode("ascii")
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate):
                return Verified(expected.decode("ascii"))
    raise SignatureError(BAD, "signature does not match")
