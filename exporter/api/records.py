"""Pure: API objects (hosts, monitors, errors, inventory) parsed defensively into frozen records,
and the one rule (`listing`) that reads a host's listing count from its count and RBL list.

Field names follow the Generator Labs API v4 reference and the v3 samples it stays compatible
with (the v4 reference keeps "response formats" backward compatible); where the v4 name is
unknown several spellings are accepted (`profile` and `rbl_profile`, `listed_count` and `total`).
A missing or unreadable field is reported through `warn(object, field, detail)` and costs only
that field: the object is kept with the field absent (a host's listing count then comes from its
RBL list, a monitor's port is ""). Only an object without an id is skipped. Numbers go through
`exporter.api.fields`, so NaN, infinities, `1e400`, booleans and out-of-range values never reach
a record. Nothing here raises on any JSON input; the scheduler still guards each call, so that a
bug costs one object, never the page.

Label values that repeat across many objects (RBL names, kinds, protocols, profile ids) are
interned (sys.intern) as they are parsed: 100,000 hosts on a handful of profiles hold a handful of
profile strings, not 100,000 copies. Hosts of the usual shape take a short path (`usual_host`)
that reads them exactly as the careful one (`parse_host_careful`) does, at about half the cost.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.api import fields
from exporter.api.fields import Unreadable

Warn = Callable[[str, str, str], None]
Raw = Mapping[str, Any]

_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
# host `type` (API reference, "Create Host"; v3 samples): rbl = an IP, uribl = a domain,
# ip_range = a subnet. Never exported as `type`.
HOST_KINDS = {
    "rbl": "ip",
    "ip": "ip",
    "uribl": "domain",
    "domain": "domain",
    "ip_range": "ip_range",
    "range": "ip_range",
    "subnet": "ip_range",
}
PAUSED_WORDS = {"paused", "inactive", "disabled", "suspended"}
# RBL Monitoring Profile `frequency` (API reference, "Create Profile": a required enum) in seconds.
# A number is not read: nothing says whether it would count seconds, minutes or hours.
FREQUENCIES = {
    "1_hour": 3600.0,
    "2_hours": 7200.0,
    "3_hours": 10800.0,
    "6_hours": 21600.0,
    "12_hours": 43200.0,
    "24_hours": 86400.0,
    "48_hours": 172800.0,
    "weekly": 604800.0,
    "2_weeks": 1209600.0,
}
# Contact `status`: "Resend" needs a contact in 'pending' status and "Confirm Contact" confirms a
# pending one (API reference, Contacts), so pending is unconfirmed; active and paused contacts
# were confirmed (a paused one is not reachable, but that is `paused`).
UNCONFIRMED_WORDS = {"pending", "unconfirmed", "unverified", "unauthorized", "unauthorised"}
CONFIRMED_WORDS = {"active", "paused", "confirmed", "verified", "authorized", "authorised"}
CONFIRMED_KEYS = ("confirmed", "is_confirmed", "authorized", "verified")
# Certificate profile alert switches (API reference, "Create Certificate Profile"), as the
# `alert` label of generatorlabs_cert_profile_alert_enabled names them: a fixed set.
ALERT_FLAGS = (
    "expiration",
    "name_mismatch",
    "ca_failure",
    "connection_failure",
    "caa_failure",
    "misconfigurations",
    "changes",
)
THRESHOLD_KEYS = ("expiration_thresholds", "expiration_threshold", "thresholds")
FREQUENCY_KEYS = ("frequency", "check_frequency")
DEFAULT_KEYS = ("is_default", "default")
MEMBER_KEYS = ("contacts", "contact_ids", "members")
MAX_THRESHOLD_DAYS = 3650.0  # the portal allows 0 to 90 days; far beyond that is garbage
MAX_MEMBERS = 10_000  # contact ids a group lists; more is not a contact list
# The bounded set of certificate error reasons: the failure kinds a certificate profile can alert
# on (expiration, name, CA, integrity/configuration, connection, DNS CAA); first keyword match wins.
ERROR_REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dns_caa", ("caa",)),
    ("expiration", ("expir", "expired", "not_after", "validity")),
    ("name_mismatch", ("name", "mismatch", "hostname", "san", "common_name")),
    ("chain_integrity", ("chain", "intermediate", "integrity", "misconfig", "config", "order")),
    ("ca_verification", ("ca", "trust", "self_signed", "self-signed", "verif", "revoked", "issuer")),
    ("connection", ("connect", "timeout", "refused", "handshake", "resolve", "dns", "network")),
)
DEFAULT_PORTS = {
    "https": 443,
    "smtps": 465,
    "smtp": 25,
    "imaps": 993,
    "imap": 143,
    "pops": 995,
    "pop3s": 995,
    "pop": 110,
    "pop3": 110,
    "lmtp": 24,
    "ftps": 990,
    "ftp": 21,
    "ldaps": 636,
    "ldap": 389,
    "mysql": 3306,
    "postgresql": 5432,
    "postgres": 5432,
    "sips": 5061,
}
NOT_AFTER_KEYS = (
    "not_after",
    "valid_to",
    "valid_until",
    "expires_at",
    "expiration_date",
    "expiry_date",
    "expire_date",
    "expires",
    "expiration",
    "cert_expiration",
    "certificate_expiration",
    "expiry",
)
EXPIRY_DAYS_KEYS = (
    "expiry_days",
    "days_until_expiry",
    "days_to_expiry",
    "days_until_expiration",
    "days_remaining",
    "days_left",
    "expires_in_days",
)


@dataclass(frozen=True, slots=True)
class Host:
    id: str
    host: str
    name: str
    kind: str
    profile_id: str
    paused: bool
    listed: bool
    listings: int
    rbls: tuple[str, ...]
    last_checked: float | None
    first_listed: float | None
    tags: str = ""  # `label_set` of the host's tags
    contact_group: str = ""  # `label_set` of the contact groups it notifies
    # Delist links of a listed host: (RBL name, http(s) URL) pairs, flattened, for the RBLs whose
    # `listed_details[].website` is one; the one shared () for every other host (no cost per host)
    delist: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Monitor:
    id: str
    name: str
    hostname: str
    protocol: str
    port: str
    profile_id: str
    paused: bool
    not_after: float | None
    expiry_days: float | None  # only when the API gives days and no date
    tags: str = ""  # `label_set` of the monitor's tags
    contact_group: str = ""  # `label_set` of the contact groups it notifies


@dataclass(frozen=True, slots=True)
class CertError:
    id: str
    monitor_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Item:
    """Inventory objects (RBL and certificate profiles, sources, contacts, contact groups): id, a
    name, a kind, and what alert delivery needs of each kind. None is "not said, or unreadable":
    never exported as a value. Fields after `paused` are read for some kinds only; they have
    defaults, so that a state file written before them reads back."""

    id: str
    name: str
    kind: str
    paused: bool
    contact_group: str = ""  # contacts: `label_set` of the groups the contact is in
    interval: float | None = None  # RBL profiles: seconds between checks (`frequency`)
    default: bool | None = None  # RBL and certificate profiles, contact groups: `is_default`
    confirmed: bool | None = None  # contacts: confirmed (not pending)
    # contact groups: the contact ids the group lists (`contacts`); None when it does not say
    # (no such key, or unreadable): then only the contacts' own lists tell who is in it
    members: tuple[str, ...] | None = None
    warning_days: float | None = None  # certificate profiles: the largest expiration threshold
    alerts_on: tuple[str, ...] = ()  # certificate profiles: the ALERT_FLAGS set to true...
    alerts_off: tuple[str, ...] = ()  # ...and to false; a flag in neither was not said


# What a field reader may raise on hostile input: Unreadable (a ValueError) by contract, and the
# arithmetic and type errors a bug in a reader would let through. Each costs only the field.
FIELD_ERRORS = (ValueError, TypeError, ArithmeticError)
MAX_PORT = 65535


def _first_key(raw: Raw, *keys: str) -> tuple[str, Any]:
    """The first of `keys` with a non-empty value, and that value; (keys[0], None) if none."""
    for key in keys:
        value = raw.get(key)
        if value is not None and not (type(value) is str and value == ""):
            return key, value
    return keys[0], None


def _first(raw: Raw, *keys: str) -> Any:
    return _first_key(raw, *keys)[1]


def _read(raw: Raw, obj: str, warn: Warn, reader: Callable[[Any], Any], *keys: str) -> Any:
    """`reader` applied to the first non-empty of `keys`; an unreadable value is warned under the
    key it came from and read as None (absent)."""
    key, value = _first_key(raw, *keys)
    try:
        return reader(value)
    except FIELD_ERRORS as err:
        warn(obj, key, str(err) if isinstance(err, Unreadable) else f"{type(err).__name__}: {err}")
        return None


def port_number(value: object) -> int | None:
    """A TCP port: a whole number from 1 to 65535 ("8443" and 8443.0 read as 8443)."""
    number = fields.number(value)
    if number is None:
        return None
    if not number.is_integer() or not 1 <= number <= MAX_PORT:
        raise Unreadable(f"not a port from 1 to {MAX_PORT}: {number:g}")
    return int(number)


def _id(raw: Raw, obj: str, warn: Warn) -> str | None:
    ident = fields.text(_first(raw, "id", "sid", f"{obj}_id"))
    if ident is None:
        warn(obj, "id", "object without an id skipped")
    return ident


def _paused(raw: Raw, obj: str, warn: Warn) -> bool:
    if "paused" not in raw:
        status = raw.get("status")
        return type(status) is str and status.lower() in PAUSED_WORDS
    flag = _read(raw, obj, warn, fields.boolean, "paused")
    if flag is not None:
        return bool(flag)
    status = fields.text(raw.get("status"))
    return status is not None and status.lower() in PAUSED_WORDS


def _kind(raw: Raw, host: str) -> str:
    return _kind_of((fields.text(raw.get("type")) or "").lower(), host)


def _kind_of(declared: str, host: str) -> str:
    """A host's kind from its declared `type` (lower case, "" if none) or else from its value."""
    if declared in HOST_KINDS:
        return HOST_KINDS[declared]
    if "/" in host:
        return "ip_range"
    if _IPV4.match(host) or ":" in host:
        return "ip"
    return "domain" if host else "unknown"


def rbl_name(detail: object) -> str | None:
    """The RBL's name from one `listed_details[]` / `details[]` entry: its `host` field is the
    RBL's display name in the v3 host samples ("Google Safe Browsing"), not a DNS zone."""
    if isinstance(detail, str):
        return label_text(detail)
    if isinstance(detail, Mapping):
        return label_text(_first(detail, "host", "rbl", "name", "source", "zone"))
    return None


def label_text(value: object) -> str | None:
    """`fields.text`, interned: for values many objects share."""
    found = fields.text(value)
    return sys.intern(found) if found is not None else None


LABEL_SET_CACHE = 4096  # distinct tag strings remembered (a bounded cache)


def label_set(value: object) -> str:
    """Tags or contact-group ids as one label value, in the convention of Prometheus service
    discovery (`__meta_gce_tags`, `__meta_digitalocean_tags`): distinct, sorted, comma-joined
    between a leading and a trailing comma (`,mta,prod,`), so that `tags=~".*,prod,.*"` matches
    one tag wherever it stands; "" when there are none (those discoveries then leave the label
    out, and Prometheus treats an empty label as absent). The API reference sends them as a
    comma-separated string ("Create Host": `tags='production,web'`); a JSON list (of strings,
    numbers, or objects with an `id` or `name`) is read too. Raises Unreadable for anything else."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _label_set_text(value)
    if isinstance(value, list | tuple):
        parts = []
        for entry in value:
            found = fields.text(_first(entry, "id", "name", "tag") if isinstance(entry, Mapping) else entry)
            if found is not None:
                parts.extend(found.split(","))
    else:
        raise Unreadable(f"not a list or text: {fields.shorten(value)}")
    return _joined(parts)


def _joined(parts: Iterable[str]) -> str:
    names = sorted({part.strip() for part in parts} - {""})
    return sys.intern(f",{','.join(names)},") if names else ""


@functools.lru_cache(maxsize=LABEL_SET_CACHE)
def _label_set_text(value: str) -> str:
    """label_set of the comma-separated form; accounts repeat a few tag strings across many
    objects, so each distinct one is worked out once."""
    return _joined(value.split(","))


def _label_set(raw: Raw, obj: str, warn: Warn, *keys: str) -> str:
    if all(raw.get(key) in (None, "", []) for key in keys):  # the common case: nothing to read
        return ""
    return _read(raw, obj, warn, label_set, *keys) or ""


def rbl_names(details: Iterable[object] | None) -> tuple[str, ...]:
    """The distinct RBL names of a details list, in order; entries without a name are skipped."""
    if not details:
        return ()
    return tuple(dict.fromkeys(n for d in details if (n := rbl_name(d))))


@dataclass(frozen=True, slots=True)
class Listing:
    """Whether a host is listed, on how many RBLs, and which ones by name."""

    listed: bool
    listings: int
    rbls: tuple[str, ...]


NOT_LISTED = Listing(False, 0, ())


def listing(listed: bool | None, count: int | None, rbls: tuple[str, ...]) -> Listing:
    """The one rule that turns a listed flag, a count and a list of RBL names into a Listing,
    for polled hosts (`listed`, `listed_count`, `listed_details`), Generator Labs' rbl.* webhooks
    (`listed`, `total`, `details`) and HetrixTools monitors (`blacklisted_now`, `blacklisted_on`).

    The API reference defines the count as "the total number of data sources this Host is
    currently listed on" and the list as the data sources that matched. The count may exceed the
    list (entries without a name), but each distinct RBL named is one source the host is listed
    on, so the list is a lower bound: a count of 1 naming two RBLs reads as 2, and
    generatorlabs_rbl_host_listings is never below the number of RBL series shown for the host.

    - `listed` unknown (None): listed when the count is above 0 or any RBL is named.
    - not listed: no listings and no RBLs, whatever the count or the list say.
    - listed: max(count, number of RBLs named, 1); a listed host is listed somewhere.
    """
    if listed is None:
        listed = bool(count) or bool(rbls)
    if not listed:
        return NOT_LISTED
    return Listing(True, max(count or 0, len(rbls), 1), rbls)


def _fast_text(value: object) -> str | None:
    if type(value) is str:
        return value.strip() or None
    return fields.text(value)


def parse_host(raw: Raw, warn: Warn) -> Host | None:
    """A host object as a Host, None (and a warning) if it has no id. The usual shape (`usual_host`)
    takes the short path; anything else the careful one, with the same result."""
    if type(raw) is dict:
        found = usual_host(raw)
        if found is not None:
            return found
    return parse_host_careful(raw, warn)


def parse_host_careful(raw: Raw, warn: Warn) -> Host | None:
    """parse_host for any input: each field read defensively, each unreadable one warned."""
    get = raw.get
    ident = _fast_text(get("id"))
    if ident is None:
        ident = _id(raw, "host", warn)
        if ident is None:
            return None
    host = _fast_text(get("host")) or ""
    if not host:
        warn("host", "host", "missing")
    details = get("listed_details", get("details"))
    if details is not None and not isinstance(details, list):
        warn("host", "listed_details", f"not a list: {type(details).__name__}")
        details = None
    count = get("listed_count")
    if type(count) is not int or not 0 <= count <= fields.MAX_COUNT:
        count = _read(raw, "host", warn, fields.count, "listed_count", "total", "listings")
    listed = get("listed")
    if type(listed) is int or type(listed) is bool:
        listed = bool(listed)
    else:
        listed = _read(raw, "host", warn, fields.boolean, "listed")
    said = listing(listed, count, rbl_names(details))
    checked = get("last_checked")
    delist = _delist(details) if said.listed and details else ()
    name = _fast_text(get("name"))
    return Host(
        id=ident,
        host=host,
        name=host if name is None or name == host else name,  # one string when they are equal
        kind=_kind(raw, host),
        profile_id=label_text(_first(raw, "profile", "rbl_profile", "profile_id")) or "",
        paused=_paused(raw, "host", warn),
        listed=said.listed,
        listings=said.listings,
        rbls=said.rbls,
        last_checked=(
            None if checked in (None, "") else _read(raw, "host", warn, fields.timestamp, "last_checked")
        ),
        first_listed=(_read(raw, "host", warn, fields.timestamp, "first_listed") if said.listed else None),
        tags=_label_set(raw, "host", warn, "tags"),
        contact_group=_label_set(raw, "host", warn, "contact_group", "contact_groups"),
        delist=delist,
    )


def _delist(details: Iterable[object]) -> tuple[str, ...]:
    """(RBL name, URL) pairs, flattened, of the `listed_details` entries whose `website` is an
    http(s) URL (the v3 sample sends "" where there is none); anything else is dropped."""
    pairs: dict[str, str] = {}
    for detail in details:
        if not isinstance(detail, Mapping) or not detail.get("website"):
            continue
        name, url = rbl_name(detail), fields.http_url(detail.get("website"))
        if name is not None and url is not None:
            pairs.setdefault(name, url)
    return tuple(part for pair in pairs.items() for part in pair)


# -- the short path of parse_host -------------------------------------------------------------
# A 100,000-host account's first inventory parses every host, and every poll of the listings
# parses every listed one; most are of one shape (the v3 samples'). `usual_host` reads that shape
# with few calls and nothing to warn about, and answers None for anything else: the careful path
# then reads the object field by field. tests/test_records_fast.py checks that the two agree.

PROFILE_KEYS = ("profile", "rbl_profile", "profile_id")
URL_CACHE = 256  # distinct delist links remembered: one per RBL that has a delisting page


def usual_host(raw: dict[str, Any]) -> Host | None:
    """What parse_host_careful makes of a host object of the usual shape, or None if it is not
    of that shape or would cost a warning. The usual shape: text id, host, name, type, profile and
    status, no `paused` key, `listed` an int or bool, `listed_count` an int in range, details a
    list of objects naming their RBL in `host`, tags and contact groups as text or a list of text,
    dates that read. `status` is read as parse_host_careful reads it."""
    get = raw.get
    ident, host, name = get("id"), get("host"), get("name")
    if type(ident) is not str or type(host) is not str or "paused" in raw:
        return None
    ident, host = ident.strip(), host.strip()
    if not ident or not host or (name is not None and type(name) is not str):
        return None
    details = get("listed_details", get("details"))
    said = _usual_listing(get("listed"), get("listed_count"), details)
    kind_text = get("type")
    if type(kind_text) is str:
        kind = _kind_of(kind_text.strip().lower(), host)
    elif kind_text is None:
        kind = _kind_of("", host)
    else:
        return None
    profile = _usual_profile(raw)
    tags = _usual_label_set(get("tags"))
    group = get("contact_group")
    unsaid = group is None or (type(group) is str and not group)
    groups = _usual_label_set(get("contact_groups") if unsaid else group)
    if said is None or profile is None or tags is None or groups is None:
        return None
    try:  # a date that does not read is warned about by the careful path
        last_checked = fields.timestamp(get("last_checked"))
        first_listed = fields.timestamp(get("first_listed")) if said.listed else None
    except FIELD_ERRORS:
        return None
    name = (name.strip() or None) if name is not None else None
    status = get("status")
    return Host(
        id=ident,
        host=host,
        name=host if name is None or name == host else name,
        kind=kind,
        profile_id=profile,
        paused=type(status) is str and status.lower() in PAUSED_WORDS,
        listed=said.listed,
        listings=said.listings,
        rbls=said.rbls,
        last_checked=last_checked,
        first_listed=first_listed,
        tags=tags,
        contact_group=groups,
        delist=_usual_delist(details) if said.listed and details else (),
    )


def _usual_listing(listed: object, count: object, details: object) -> Listing | None:
    """`listing` of an int/bool flag, an int count in range and a list of detail objects whose
    `host` (the RBL's name) is non-blank text; None for anything else."""
    if type(listed) is not int and type(listed) is not bool:
        return None
    if type(count) is not int or not 0 <= count <= fields.MAX_COUNT:
        return None
    if details is not None and type(details) is not list:
        return None
    names: dict[str, None] = {}
    for detail in details or ():
        found = detail.get("host") if type(detail) is dict else None
        if type(found) is not str or not (found := found.strip()):
            return None
        names[sys.intern(found)] = None
    return Listing(True, max(count, len(names), 1), tuple(names)) if listed else NOT_LISTED


def _usual_profile(raw: dict[str, Any]) -> str | None:
    """The profile id as parse_host_careful reads it (the first non-empty of PROFILE_KEYS), if
    that is text; None if it is not."""
    for key in PROFILE_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if type(value) is not str:
            return None
        if value:
            found = value.strip()
            return sys.intern(found) if found else ""
    return ""


def _usual_label_set(value: object) -> str | None:
    """label_set of nothing, text or a list of text (a list reads as its entries comma-joined);
    None for anything else."""
    if value is None:
        return ""
    if type(value) is str:
        return _label_set_text(value) if value else ""
    if type(value) is list and all(type(entry) is str for entry in value):
        return _label_set_text(",".join(value)) if value else ""
    return None


def _usual_delist(details: list[dict[str, Any]]) -> tuple[str, ...]:
    """_delist of details already checked by _usual_listing, with the links' readings cached."""
    pairs: dict[str, str] = {}
    for detail in details:
        website = detail.get("website")
        if not website:
            continue
        url = _http_url(website) if type(website) is str else fields.http_url(website)
        if url is not None:
            pairs.setdefault(sys.intern(detail["host"].strip()), url)
    return tuple(part for pair in pairs.items() for part in pair)


_http_url = functools.lru_cache(maxsize=URL_CACHE)(fields.http_url)


def _not_after(raw: Raw, warn: Warn) -> float | None:
    nested = raw.get("certificate") if isinstance(raw.get("certificate"), Mapping) else None
    for source in (raw, nested or {}):
        for key in NOT_AFTER_KEYS:
            if source.get(key) not in (None, ""):
                try:
                    return fields.timestamp(source[key])
                except FIELD_ERRORS as err:
                    warn("monitor", key, str(err))
    # last resort: no public source names the v4 expiry field, so any other key that smells of
    # expiry and reads as a date is taken
    for key, value in raw.items():
        if expiry_like(key) and key not in NOT_AFTER_KEYS:
            try:
                return fields.timestamp(value)
            except FIELD_ERRORS:
                continue
    return None


def parse_monitor(raw: Raw, warn: Warn) -> Monitor | None:
    ident = _id(raw, "monitor", warn)
    if ident is None:
        return None
    protocol = sys.intern((fields.text(raw.get("protocol")) or "").lower())
    port: int | None
    if _first(raw, "port") is None:  # absent: derived from the protocol, as the API does
        port = DEFAULT_PORTS.get(protocol.split("+")[0].split("_")[0])
    else:  # present: a port from 1 to 65535, or warned and absent ("")
        port = _read(raw, "monitor", warn, port_number, "port")
    hostname = fields.text(_first(raw, "hostname", "host")) or ""
    not_after = _not_after(raw, warn)
    days = None
    if not_after is None:
        days = _read(raw, "monitor", warn, fields.number, *EXPIRY_DAYS_KEYS)
        if days is None:
            warn("monitor", "not_after", "no expiry date or days field")
    return Monitor(
        id=ident,
        name=fields.text(raw.get("name")) or hostname,
        hostname=hostname,
        protocol=protocol,
        port=sys.intern(str(port)) if port is not None else "",
        profile_id=label_text(_first(raw, "profile", "cert_profile", "profile_id")) or "",
        paused=_paused(raw, "monitor", warn),
        not_after=not_after,
        expiry_days=days,
        tags=_label_set(raw, "monitor", warn, "tags"),
        contact_group=_label_set(raw, "monitor", warn, "contact_group", "contact_groups"),
    )


def error_reason(value: str | None) -> str:
    """Map the API's error type text onto the bounded `reason` label set."""
    if not value:
        return "other"
    word = value.lower()
    tokens = set(re.split(r"[^a-z0-9]+", word))
    for reason, keys in ERROR_REASONS:
        # short keys ("ca", "san") only as whole words: "certificate" is not about a CA
        if any(k in tokens if len(k) <= 3 else k in word for k in keys):
            return reason
    return "other"


def parse_cert_error(raw: Raw, warn: Warn) -> CertError | None:
    monitor = raw.get("monitor")
    monitor_id = fields.text(
        monitor.get("id")
        if isinstance(monitor, Mapping)
        else _first(raw, "monitor_id", "monitor_sid", "monitor")
    )
    if monitor_id is None:
        warn("cert_error", "monitor_id", "error without a monitor id skipped")
        return None
    kind = fields.text(_first(raw, "error_type", "type", "reason", "code", "category", "error"))
    if kind is None:
        warn("cert_error", "error_type", "missing")
    reason = error_reason(kind)
    ident = fields.text(_first(raw, "id", "sid")) or f"{monitor_id}:{reason}"
    return CertError(id=ident, monitor_id=monitor_id, reason=reason)


def parse_item(obj: str, raw: Raw, warn: Warn) -> Item | None:
    """An inventory object of kind `obj` (profile, source, contact, contact_group, cert_profile),
    with what alert delivery needs of its kind (`_DELIVERY`)."""
    ident = _id(raw, obj, warn)
    if ident is None:
        return None
    # contacts' `contact` is an e-mail address or phone number: personal data, never a label
    name = "" if obj == "contact" else fields.text(_first(raw, "name", "host", "label")) or ""
    kind = sys.intern((fields.text(raw.get("type")) or "").lower())
    groups = _label_set(raw, obj, warn, "contact_group", "contact_groups") if obj == "contact" else ""
    extra = _DELIVERY[obj](raw, obj, warn) if obj in _DELIVERY else {}
    return Item(id=ident, name=name, kind=kind, paused=_paused(raw, obj, warn), contact_group=groups, **extra)


def frequency_seconds(value: object) -> float | None:
    """A profile's `frequency` enum ("6_hours", "weekly") in seconds; spaces and hyphens read as
    underscores, any case. Raises Unreadable for a value outside the enum (a number included)."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) <= fields.MAX_TEXT_NUMBER:
        word = value.strip().lower().replace(" ", "_").replace("-", "_")
        if word in FREQUENCIES:
            return FREQUENCIES[word]
    raise Unreadable(f"not a known frequency: {fields.shorten(value)}")


def confirmation(value: object) -> bool | None:
    """A contact's `status` as confirmed (True) or pending (False); None for a word that means
    paused but not which (`disabled`, `inactive`, `suspended`). Raises Unreadable for a word in
    none of these sets."""
    if value is None or value == "":
        return None
    word = fields.text(value)
    if word is None:  # a list, an object, a boolean
        raise Unreadable(f"not a contact status: {fields.shorten(value)}")
    word = word.lower()
    if word in UNCONFIRMED_WORDS:
        return False
    if word in CONFIRMED_WORDS:
        return True
    if word in PAUSED_WORDS:  # paused, as _paused reads it: whether it ever confirmed is not said
        return None
    raise Unreadable(f"not a known contact status: {fields.shorten(value)}")


def thresholds_days(value: object) -> float | None:
    """The largest of a certificate profile's expiration thresholds ("30,14,7", [30, 14, 7] or
    one number), in days: its earliest warning. Raises Unreadable if any entry is not a number
    from 0 to MAX_THRESHOLD_DAYS."""
    if value is None:
        return None
    if isinstance(value, str):
        entries: list[object] = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        entries = list(value)
    else:
        entries = [value]
    days = []
    for entry in entries:
        number = fields.number(entry.strip() if isinstance(entry, str) else entry)
        if number is None or not 0 <= number <= MAX_THRESHOLD_DAYS:
            raise Unreadable(
                f"not a threshold from 0 to {MAX_THRESHOLD_DAYS:g} days: {fields.shorten(entry)}"
            )
        days.append(number)
    return max(days, default=None)


def member_ids(value: object) -> tuple[str, ...]:
    """A group's `contacts`: ids as a comma list, a JSON list of ids, or of objects with an id."""
    found = label_set(value)
    ids = tuple(part for part in found.split(",") if part)
    if len(ids) > MAX_MEMBERS:
        raise Unreadable(f"more than {MAX_MEMBERS} contacts")
    return ids


def _is_default(raw: Raw, obj: str, warn: Warn) -> bool | None:
    flag = _read(raw, obj, warn, fields.boolean, *DEFAULT_KEYS)
    return None if flag is None else bool(flag)


def _rbl_profile(raw: Raw, obj: str, warn: Warn) -> dict[str, Any]:
    interval = _read(raw, obj, warn, frequency_seconds, *FREQUENCY_KEYS)
    return {"interval": interval, "default": _is_default(raw, obj, warn)}


def _contact(raw: Raw, obj: str, warn: Warn) -> dict[str, Any]:
    """Confirmed from a boolean key if the API sends one, else from `status`; neither readable:
    None (not exported) and a warning."""
    if _first(raw, *CONFIRMED_KEYS) is not None:
        flag = _read(raw, obj, warn, fields.boolean, *CONFIRMED_KEYS)
        if flag is not None:
            return {"confirmed": bool(flag)}
    confirmed = _read(raw, obj, warn, confirmation, "status")
    if confirmed is None and _first(raw, "status") is None:
        warn(obj, "status", "no status or confirmation field")
    return {"confirmed": confirmed}


def _contact_group(raw: Raw, obj: str, warn: Warn) -> dict[str, Any]:
    members: tuple[str, ...] | None
    if not any(key in raw for key in MEMBER_KEYS):
        members = None  # the group does not say: not the same as "nobody"
    elif _first(raw, *MEMBER_KEYS) is None:
        members = ()  # `""` or null: the group lists nobody
    else:
        members = _read(raw, obj, warn, member_ids, *MEMBER_KEYS)
    return {"default": _is_default(raw, obj, warn), "members": members}


def _cert_profile(raw: Raw, obj: str, warn: Warn) -> dict[str, Any]:
    """The largest threshold and each alert switch; a switch the API does not send is in
    neither `alerts_on` nor `alerts_off` (its documented default is not assumed)."""
    on: list[str] = []
    off: list[str] = []
    for flag in ALERT_FLAGS:
        value = _read(raw, obj, warn, fields.boolean, f"alert_on_{flag}")
        if value is not None:
            (on if value else off).append(flag)
    return {
        "warning_days": _read(raw, obj, warn, thresholds_days, *THRESHOLD_KEYS),
        "alerts_on": tuple(on),
        "alerts_off": tuple(off),
        "default": _is_default(raw, obj, warn),
    }


# what each inventory kind reads beyond id, name, type, status (the Item fields they fill)
_DELIVERY: Mapping[str, Callable[[Raw, str, Warn], dict[str, Any]]] = {
    "profile": _rbl_profile,
    "contact": _contact,
    "contact_group": _contact_group,
    "cert_profile": _cert_profile,
}


# What each parser reads, for the field summary logged at a collector's first successful poll and
# written into captures: per object, each field by the name logs use, with every spelling read.
# Monitors also take any other key that smells of expiry (see _not_after); `expiry_like` says so.
FieldSpellings = tuple[tuple[str, tuple[str, ...]], ...]
_ITEM_FIELDS: FieldSpellings = (
    ("name", ("name", "host", "label")),
    ("type", ("type",)),
    ("status", ("status", "paused")),
)
FIELDS: Mapping[str, FieldSpellings] = {
    "host": (
        ("id", ("id", "sid", "host_id")),
        ("host", ("host",)),
        ("name", ("name",)),
        ("type", ("type",)),
        ("status", ("status", "paused")),
        ("profile", ("profile", "rbl_profile", "profile_id")),
        ("listed", ("listed",)),
        ("listed_count", ("listed_count", "total", "listings")),
        ("listed_details", ("listed_details", "details")),
        ("last_checked", ("last_checked",)),
        ("first_listed", ("first_listed",)),
        ("tags", ("tags",)),
        ("contact_group", ("contact_group", "contact_groups")),
    ),
    "monitor": (
        ("id", ("id", "sid", "monitor_id")),
        ("name", ("name",)),
        ("hostname", ("hostname", "host")),
        ("protocol", ("protocol",)),
        ("port", ("port",)),
        ("profile", ("profile", "cert_profile", "profile_id")),
        ("status", ("status", "paused")),
        ("not_after", (*NOT_AFTER_KEYS, *EXPIRY_DAYS_KEYS, "certificate")),
        ("tags", ("tags",)),
        ("contact_group", ("contact_group", "contact_groups")),
    ),
    "cert_error": (
        ("id", ("id", "sid")),
        ("monitor_id", ("monitor_id", "monitor_sid", "monitor")),
        ("error_type", ("error_type", "type", "reason", "code", "category", "error")),
    ),
    "profile": (
        ("id", ("id", "sid", "profile_id")),
        *_ITEM_FIELDS,
        ("frequency", FREQUENCY_KEYS),
        ("is_default", DEFAULT_KEYS),
    ),
    "source": (("id", ("id", "sid", "source_id")), *_ITEM_FIELDS),
    "contact": (
        ("id", ("id", "sid", "contact_id")),
        ("type", ("type",)),
        ("status", ("status", "paused", *CONFIRMED_KEYS)),
        ("contact_group", ("contact_group", "contact_groups")),
    ),
    "contact_group": (
        ("id", ("id", "sid", "contact_group_id")),
        *_ITEM_FIELDS,
        ("is_default", DEFAULT_KEYS),
        ("contacts", MEMBER_KEYS),
    ),
    "cert_profile": (
        ("id", ("id", "sid", "cert_profile_id")),
        *_ITEM_FIELDS,
        ("expiration_thresholds", THRESHOLD_KEYS),
        *((f"alert_on_{flag}", (f"alert_on_{flag}",)) for flag in ALERT_FLAGS),
        ("is_default", DEFAULT_KEYS),
    ),
}
# Documented fields the exporter does not read (API reference and v3 samples): neither "found"
# nor "unknown" in a field summary.
UNUSED_FIELDS: Mapping[str, frozenset[str]] = {
    "host": frozenset({"parent", "listed_period", "first_blocked", "block_period", "blocked"}),
    "monitor": frozenset({"last_checked"}),
    "cert_error": frozenset({"monitor_name", "message"}),
    "profile": frozenset({"entries", "sync_method"}),
    "source": frozenset({"custom", "custom_codes", "website"}),
    "contact": frozenset({"contact", "schedule", "args"}),
    "contact_group": frozenset(),
    "cert_profile": frozenset(),
}


@dataclass(frozen=True, slots=True)
class FieldReport:
    """Which of the fields a parser reads a set of objects had (`found`), which none had
    (`missing`), and which keys it does not know (`unknown`: neither read nor documented)."""

    found: tuple[str, ...]
    missing: tuple[str, ...]
    unknown: tuple[str, ...]


def expiry_like(key: str) -> bool:
    """A key parse_monitor's last resort reads as an expiry date."""
    return ("expir" in key or "not_after" in key) and "day" not in key


def field_report(obj: str, keys: Iterable[str]) -> FieldReport:
    """The FieldReport of objects of kind `obj` (a key of FIELDS) whose keys were `keys`."""
    present = set(keys)
    spelled = FIELDS.get(obj, ())
    guessed = obj == "monitor" and any(expiry_like(k) for k in present)
    matched = present | {"not_after"} if guessed else present
    found = tuple(name for name, spellings in spelled if matched.intersection(spellings))
    known = {s for _, spellings in spelled for s in spellings} | UNUSED_FIELDS.get(obj, frozenset())
    unknown = (k for k in present - known if not (obj == "monitor" and expiry_like(k)))
    return FieldReport(
        found=found,
        missing=tuple(name for name, _ in spelled if name not in found),
        unknown=tuple(sorted(unknown)),
    )
