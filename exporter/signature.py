"""Pure: verify Generator Labs' `X-Webhook-Signature: t=<unix>,v1=<hex>` (API reference,
"Webhook Verification"; evidence §9, identical in all five official SDKs).

HMAC-SHA256 with the signing secret (UTF-8 bytes, as-is) over `"{t}." + raw body`, lowercase hex,
constant-time comparison. The timestamp check runs before the HMAC, and a non-numeric `t` is
rejected (the Node SDK's NaN passes its check; ours does not). Several secrets may be valid at
once (rotation; each portal webhook endpoint has its own).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.errors import ExporterError

DEFAULT_TOLERANCE = 300.0


class SignatureError(ExporterError):
    """The webhook is not from Generator Labs, or too old (or new) to trust."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason  # missing_signature, malformed_signature, stale_timestamp, bad_signature
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Verified:
    timestamp: int
    signature: str  # the matching v1 value, for replay protection


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The header value a sender computes (used by the simulator and the tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def parse_header(header: str) -> tuple[str, list[str]]:
    """`t=..,v1=..` split on `,` then on the first `=`; every v1 is kept (rotation may send two)."""
    t: str | None = None
    v1: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            t = value.strip()
        elif key == "v1":
            v1.append(value.strip())
    if t is None or not v1:
        raise SignatureError("malformed_signature", "malformed X-Webhook-Signature header")
    return t, v1


def verify(header: str | None, body: bytes, secrets: Sequence[str], *, now: float,
           tolerance: float = DEFAULT_TOLERANCE) -> Verified:
    if not header:
        raise SignatureError("missing_signature", "missing X-Webhook-Signature header")
    t, candidates = parse_header(header)
    if not t.isdigit():
        raise SignatureError("malformed_signature", "X-Webhook-Signature timestamp is not a number")
    timestamp = int(t)
    if tolerance > 0 and abs(now - timestamp) > tolerance:
        raise SignatureError("stale_timestamp", f"timestamp outside the {tolerance:g}s window")
    message = f"{timestamp}.".encode() + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate.lower()):
                return Verified(timestamp, expected)
    raise SignatureError("bad_signature", "signature does not match")
