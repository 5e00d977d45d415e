"""Pure: anonymise an API response body for a capture file, keeping what the parsers need.

The structure stays: every object keeps its keys, every list its length, numbers stay numbers,
booleans booleans, nulls null, and a date string stays the same date string. What could name the
account or its customers is replaced, consistently within one file (the same value gets the same
placeholder everywhere, so a host's `name` equal to its `host` stays equal):

- ids (two upper case letters and 32 or 64 hex digits, the API reference's SID form, also inside
  comma lists and URL paths): the same two letters and a keyed hash of the same length, so that
  the parsers still accept them and the original cannot be recovered without the key;
- IPv4 addresses and networks: the documentation ranges 192.0.2.0/24, 198.51.100.0/24 and
  203.0.113.0/24 (RFC 5737), then the benchmarking range 198.18.0.0/15; IPv6: 2001:db8:: (RFC 3849);
  a network keeps its prefix length;
- domain names: `host-N.example.net` (a `*.` wildcard and a `:port` kept); e-mail addresses:
  `user-N@example.net`; URLs: the scheme and `site-N.example.net`; phone numbers: `+1555010NNNN`;
- any other text: a placeholder of the same length, unless it is on the allow-list below.

Kept as they are: empty and blank strings, boolean words ("true", "0"), dates (ISO-8601 and the
v3 `2016-11-07 21:01:33 EST` form), numbers in strings of up to six digits ("25", "3.4", "1e5"),
epoch seconds in a field whose name says it is a time (a longer number keeps its first digit and
its length, the rest is a running number), and the values of enumerations: in a field
named like ENUM_KEYS (host `type` rbl/uribl, `status` active/paused, `protocol` https/smtps,
contact `schedule`, certificate `error_type`), a bare token of letters, digits, `_`, `+` and `-`
of at most 32 characters; in a field named like a threshold (a certificate profile's
`expiration_thresholds`, "30,14,7"), a comma list of numbers of up to three digits. Neither can
hold an address, a domain or a sentence, so a customer's text in such a field is still replaced.
The envelope's `status_message` is kept when it is plain words ("OK", "Check status retrieved
successfully.").
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from exporter.api import fields

# a SID anywhere in a text: 64 hex digits first (the v3 manual-check ids are PP + 64 hex)
SID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])([A-Z]{2})([0-9a-fA-F]{64}|[0-9a-fA-F]{32})(?![0-9A-Za-z])")
SID_LIST = re.compile(
    r"^\s*[A-Z]{2}[0-9a-fA-F]{32}(?:[0-9a-fA-F]{32})?(?:\s*,\s*[A-Z]{2}[0-9a-fA-F]{32,64})*\s*$"
)
ENUM_KEYS = frozenset(
    {
        "type",
        "status",
        "state",
        "kind",
        "protocol",
        "schedule",
        "frequency",
        "error_type",
        "category",
        "code",
        "reason",
        "severity",
    }
)
ENUM_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]{0,31}$")
ENVELOPE_TEXT_KEYS = frozenset({"status_message"})
PLAIN_WORDS = re.compile(r"^[A-Za-z][A-Za-z ,'!-]{0,98}[.!]?$")
# name parts of a field that holds a time (epoch seconds in a string are kept there)
TIME_WORDS = frozenset(
    {"at", "date", "time", "timestamp", "checked", "listed", "expires", "expiry", "expiration"}
    | {"after", "before", "until", "since", "created", "updated", "modified", "valid", "seen"}
)
CONTACT_WORDS = frozenset({"contact", "phone", "sms", "mobile", "number", "tel"})
KEPT_NUMBER_DIGITS = 6  # a number in a string with at most this many digits is kept
THRESHOLD_WORDS = frozenset({"threshold", "thresholds"})
THRESHOLD_LIST = re.compile(r"^\s*\d{1,3}(?:\s*,\s*\d{1,3})*\s*$")  # days, comma-separated
PHONE_DIGITS = 7  # the fewest digits a phone number has
PHONE = re.compile(r"^\+?[\d\s().-]{7,24}$")
EMAIL = re.compile(r"^(mailto:)?[^@\s/]+@([^@\s/]+\.[^@\s/]+)$", re.IGNORECASE)
URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,15})://[^\s]+$")
DOMAIN = re.compile(
    r"^(\*\.)?((?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})\.?(:\d{1,5})?$"
)
IDENT_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
IPV4_POOLS = ("192.0.2.0", "198.51.100.0", "203.0.113.0")  # RFC 5737, 254 addresses each
IPV4_OVERFLOW = int(ipaddress.IPv4Address("198.18.0.0"))  # RFC 2544: 131,072 more


def _words(key: str | None) -> set[str]:
    return set((key or "").lower().replace("-", "_").split("_"))


def _long_integer(value: object) -> bool:
    """An integer with more digits than a count or a port has (e.g. an IPv4 address sent as a
    number); booleans are not integers here."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**KEPT_NUMBER_DIGITS


class Anonymiser:
    """One capture file's replacements: the same value always gets the same placeholder. The
    salt keys the id hash; it is never written anywhere."""

    def __init__(self, salt: bytes) -> None:
        self._salt = salt
        self._numbers: dict[tuple[str, str], int] = {}
        self._counts: dict[str, int] = {}

    # -- the public surface -------------------------------------------------------------------

    def body(self, value: object) -> object:
        """A whole JSON body: its top-level envelope text is judged as such."""
        if isinstance(value, Mapping):
            return {self._key(k): self._value(v, str(k), top=True) for k, v in value.items()}
        return self._value(value, None)

    def text(self, value: str) -> str:
        """A request path or any text whose only identifiers are ids (e.g. `rbl/hosts/HT….json`)."""
        return SID_IN_TEXT.sub(lambda m: self.sid(m.group(0)), value)

    def sid(self, value: str) -> str:
        """The same two letters, and a keyed hash as long as the hex digits it replaces."""
        digest = hmac.new(self._salt, value.upper().encode(), hashlib.sha256).hexdigest()
        return value[:2] + (digest * 2)[: len(value) - 2]

    # -- walking ------------------------------------------------------------------------------

    def _key(self, key: object) -> str:
        text = str(key)
        if fields.SID.fullmatch(text):
            return self.sid(text)
        return text if IDENT_KEY.match(text) else str(self._string(text, None))

    def _value(self, value: object, key: str | None, *, top: bool = False) -> object:
        if isinstance(value, Mapping):
            return {self._key(k): self._value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v, key) for v in value]
        if isinstance(value, str):
            if top and key in ENVELOPE_TEXT_KEYS and PLAIN_WORDS.match(value):
                return value
            return self._string(value, key)
        if _phone_number(value, key):  # a phone number sent as a number
            return int("5" + self._digits(str(value))[1:])
        if _long_integer(value) and not _words(key) & TIME_WORDS:
            return int(self._digits(str(value)))  # an address or an account number as a number
        return value  # other numbers, booleans and null are kept

    # -- one string ---------------------------------------------------------------------------

    def _string(self, value: str, key: str | None) -> object:
        if not value.strip():
            return value
        if SID_LIST.match(value):
            return self.text(value)
        if value.strip().lower() in fields.TRUE_WORDS | fields.FALSE_WORDS:
            return value
        if _number(value) and not _international_number(value):
            return self._number_text(value, key)
        if _reads_as_date(value):  # ISO-8601 or the v3 form: no free text reads as either
            return value
        if _words(key) & THRESHOLD_WORDS and THRESHOLD_LIST.match(value):
            return value
        return self._address(value) or self._kept(value, key) or self._placeholder(value, key)

    def _number_text(self, value: str, key: str | None) -> str:
        digits = sum(c.isdigit() for c in value)
        if digits <= KEPT_NUMBER_DIGITS:
            return value
        if _words(key) & TIME_WORDS and _reads_as_date(value.strip()):
            return value  # epoch seconds or milliseconds
        return self._digits(value)

    def _address(self, value: str) -> str | None:
        """The placeholder of an address (e-mail, URL, IP, phone number, domain), or None."""
        text = value.strip()
        if m := EMAIL.match(text):
            return (m.group(1) or "") + self._remember("email", text.lower(), "user-{n}@example.net")
        if m := URL.match(text):
            host = urlsplit(text).hostname or text
            return f"{m.group(1)}://{self._ip(host) or self._domain(host)}/"
        ip = self._ip(text)
        if ip is not None:
            return ip
        if PHONE.match(text) and sum(c.isdigit() for c in text) >= PHONE_DIGITS:
            return self._remember("phone", "".join(c for c in text if c.isdigit()), "+1555010{n:04d}")
        if m := DOMAIN.match(text):
            return (m.group(1) or "") + self._domain(m.group(2)) + (m.group(3) or "")
        return None

    def _domain(self, name: str) -> str:
        return self._remember("domain", name.lower().rstrip("."), "host-{n}.example.net")

    def _ip(self, text: str) -> str | None:
        address, slash, prefix = text.partition("/")
        port = ""
        if address.count(":") == 1 and "." in address:  # 192.0.2.1:25
            address, port = address.split(":")
            port = ":" + port
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if slash and not prefix.isdigit():
            return None
        if ip.version == 6:
            replaced = self._remember("ipv6", str(ip), "2001:db8::{n:x}")
        else:
            replaced = ipv4_placeholder(self._number("ipv4", str(ip)))
        return replaced + port + (f"/{prefix}" if slash else "")

    def _kept(self, value: str, key: str | None) -> str | None:
        """An enumeration's value, kept (see ENUM_KEYS)."""
        if key is not None and key.lower() in ENUM_KEYS and ENUM_TOKEN.match(value):
            return value
        return None

    def _placeholder(self, value: str, key: str | None) -> str:
        tag = "name" if "name" in _words(key) or (key or "").endswith("name") else "text"
        base = self._remember("text", value, tag + "-{n}")
        return base + "x" * (len(value) - len(base)) if len(base) <= len(value) else "x" * len(value)

    def _digits(self, value: str) -> str:
        """As many digits, the first one kept (so the magnitude stays), then a running number;
        other characters kept."""
        digits = [c for c in value if c.isdigit()]
        tail = str(self._number("digits", value)).rjust(len(digits) - 1, "0")[-(len(digits) - 1) :]
        replacement = iter(digits[0] + tail if len(digits) > 1 else digits[0])
        return "".join(next(replacement) if c.isdigit() else c for c in value)

    # -- consistency ---------------------------------------------------------------------------

    def _number(self, kind: str, original: str) -> int:
        """The running number of `original` among the values of `kind` (from 1)."""
        key = (kind, original)
        if key not in self._numbers:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._numbers[key] = self._counts[kind]
        return self._numbers[key]

    def _remember(self, kind: str, original: str, template: str) -> str:
        return template.format(n=self._number(kind, original))


def ipv4_placeholder(n: int) -> str:
    """The `n`-th (from 1) IPv4 placeholder: documentation ranges first, then 198.18.0.0/15."""
    index = n - 1
    if index < 254 * len(IPV4_POOLS):
        pool = ipaddress.IPv4Address(IPV4_POOLS[index // 254])
        return str(pool + index % 254 + 1)
    return str(ipaddress.IPv4Address(IPV4_OVERFLOW + index - 254 * len(IPV4_POOLS) + 1))


def _phone_number(value: object, key: str | None) -> bool:
    big = isinstance(value, int) and not isinstance(value, bool) and value >= 10**KEPT_NUMBER_DIGITS
    return big and bool(_words(key) & CONTACT_WORDS)


def _international_number(value: str) -> bool:
    """`+15551234567`: a phone number that also reads as a number."""
    return value.lstrip().startswith("+") and sum(c.isdigit() for c in value) >= PHONE_DIGITS


def _number(value: str) -> bool:
    """Text that reads as a number ("25", "3.4", "1e5", "NaN"): never a name or an address."""
    try:
        float(value)
    except ValueError:
        return False
    return True


def _reads_as_date(value: str) -> bool:
    """Text the exporter reads as a date, or as no date (`0000-00-00`): not a date that does not
    exist (`2024-13-45`), and no free text, which reads as neither."""
    try:
        fields.timestamp(value)
    except fields.Unreadable:
        return False
    return True
