"""Pure: a simulated Generator Labs account that changes over (injected) time. No I/O.

Hosts get listed and delisted, certificates approach expiry and are renewed, certificate errors
appear and clear. The v4 API reference promises "Backward compatible authentication and response
formats" ("Key Changes in v4.0") and documents no object schemas, so objects are shaped like the
real v3 host samples in the rbltracker/rbltracker-php README: `listed` as 0/1, v3-style local
dates, `listed_details[].host` = the RBL's name. When a sender asks for them (`outbox`), every
change also becomes a webhook event.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

HOUR = 3600
DAY = 24 * HOUR
RBLS = (
    "Spamhaus ZEN",
    "Barracuda Central",
    "SpamCop",
    "SORBS SPAM",
    "UCEPROTECT Level 1",
    "PSBL",
    "Mailspike BL",
    "SURBL multi",
    "URIBL black",
    "Spamhaus DBL",
    "Google Safe Browsing",
    "Invaluement ivmSIP",
    "Truncate",
    "JustSpam",
    "Abusix Mail Intelligence",
)
# Delisting pages of some RBLs (listed_details[].website); the others send "" as the v3 sample does.
RBL_WEBSITES = {
    "Spamhaus ZEN": "https://check.spamhaus.org/",
    "Barracuda Central": "https://www.barracudacentral.org/rbl/removal-request",
    "SpamCop": "https://www.spamcop.net/bl.shtml",
    "UCEPROTECT Level 1": "https://www.uceprotect.net/en/rblcheck.php",
}
ERROR_TYPES = ("name_mismatch", "ca_verification", "chain_integrity", "connection", "dns_caa")
PROTOCOLS = (("https", 443), ("smtps", 465), ("imaps", 993), ("ldaps", 636), ("https", 443))
EST = timezone(timedelta(hours=-5))  # the v3 samples' dates are local time, written "EST"
GROUP_ID = "CG" + "0" * 32  # the account's default contact group: every object notifies it
# RBL monitoring profiles: (name, `frequency`, seconds); hosts are spread over them in turn and
# checked once per their profile's interval, in rounds (as the vendor checks them).
PROFILES = (
    ("Default", "1_hour", HOUR),
    ("Daily", "24_hours", DAY),
    ("Every 6 hours", "6_hours", 6 * HOUR),
)
ONCALL_EVERY = 10  # every 10th monitor also notifies the on-call group (whose contact is pending)
# How the account drifts (the defaults of `Account`; the CLI can change the first two).
LISTED_FRACTION = 0.05  # hosts listed in the steady state
CHURN_HOURS = 6.0  # mean duration of a listing
STEP = 60.0  # the account moves in steps of at least this many seconds
CERT_ERROR_HOURS = 48  # mean time between errors of one monitor
CERT_ERROR_CLEAR_HOURS = 2  # mean duration of a (non-expiry) certificate error
INITIAL_ERROR_SHARE = 0.05  # monitors that start with an error
EXPIRY_ERROR_DAYS = 14  # a certificate this close to expiry has an "expiration" error
RENEW_DAYS_BEFORE = 3  # certificates are renewed this close to expiry...
RENEWED_FOR_DAYS = 90  # ...for this long
POISSON_EXACT_BELOW = 30  # mean number of events under which they are drawn exactly


def sid(prefix: str, *parts: object) -> str:
    """Stable SIDs: two letters and 32 hex digits, as the API's (the SDKs validate
    `^[A-Z]{2}[0-9a-fA-F]{32}$`, e.g. generator-labs/go-sdk `client.go`)."""
    digest = hashlib.md5(":".join(map(str, (prefix, *parts))).encode(), usedforsecurity=False)
    return prefix + digest.hexdigest()


def v3_date(ts: float | None) -> str:
    """`2016-11-07 21:01:33 EST` (the v3 host samples' `last_checked`), or "" for none."""
    if ts is None:
        return ""
    return _v3_date(int(ts))


ONCALL_ID = sid("CG", "oncall")  # a contact group some monitors notify besides the default one


@functools.lru_cache(maxsize=65536)
def _v3_date(ts: int) -> str:
    return datetime.fromtimestamp(ts, EST).strftime("%Y-%m-%d %H:%M:%S EST")


# Text JSON writes as it is, between quotes: printable ASCII but `"` and `\`.
_plain = re.compile(r"[ !#-\[\]-~]*").fullmatch


@functools.lru_cache(maxsize=64)
def _detail_json(rbl: str) -> str:
    """One `listed_details` entry of a host listed on `rbl`, as JSON."""
    detail = {"host": rbl, "website": RBL_WEBSITES.get(rbl, ""), "details": "Listed (simulated)"}
    return json.dumps(detail, separators=(",", ":"))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class SimHost:
    id: str
    host: str
    name: str
    type: str
    profile: str
    paused: bool = False
    rbls: list[str] = field(default_factory=list)
    first_listed: float | None = None
    last_checked: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "name": self.name,
            "type": self.type,
            "parent": "",
            "status": "paused" if self.paused else "active",
            "profile": self.profile,
            "contact_group": GROUP_ID,
            "tags": ["demo"],
            "last_checked": v3_date(self.last_checked),
            "first_listed": v3_date(self.first_listed),
            "listed_period": "",
            "listed": 1 if self.rbls else 0,
            "listed_count": len(self.rbls),
            "listed_details": [
                {"host": r, "website": RBL_WEBSITES.get(r, ""), "details": "Listed (simulated)"}
                for r in self.rbls
            ],
        }

    def json_text(self) -> str:
        """`json.dumps(self.to_json(), separators=(",", ":"))`, written directly: the pages of a
        100,000-host account are encoded often. Its strings are written as they are when JSON
        would not escape them (the hosts the account makes), else encoded by json."""
        if not _plain(self.id + self.host + self.name + self.type + self.profile):
            return json.dumps(self.to_json(), separators=(",", ":"))
        status = "paused" if self.paused else "active"
        details = ",".join(map(_detail_json, self.rbls))
        return (
            f'{{"id":"{self.id}","host":"{self.host}","name":"{self.name}","type":"{self.type}",'
            f'"parent":"","status":"{status}","profile":"{self.profile}",'
            f'"contact_group":"{GROUP_ID}","tags":["demo"],"last_checked":"{v3_date(self.last_checked)}",'
            f'"first_listed":"{v3_date(self.first_listed)}","listed_period":"",'
            f'"listed":{1 if self.rbls else 0},"listed_count":{len(self.rbls)},"listed_details":[{details}]}}'
        )


@dataclass(slots=True)
class SimMonitor:
    id: str
    name: str
    hostname: str
    protocol: str
    port: int
    profile: str
    not_after: float
    paused: bool = False
    errors: dict[str, str] = field(default_factory=dict)  # error type -> error sid
    last_checked: float | None = None
    contact_group: str = GROUP_ID  # comma-separated, as the API reference writes it

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "hostname": self.hostname,
            "protocol": self.protocol,
            "port": self.port,
            "profile": self.profile,
            "contact_group": self.contact_group,
            "status": "paused" if self.paused else "active",
            "tags": [],
            "expiration_date": iso(self.not_after),
            "last_checked": v3_date(self.last_checked),
        }


def _make_host(seed: int, i: int, profile: str) -> SimHost:
    """Host number `i`: three in four are IPs (RBL), the rest domains (URIBL); one in 50 is paused."""
    is_ip = i % 4 != 3
    value = f"198.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" if is_ip else f"mail{i}.example.com"
    name = f"{'mx' if is_ip else 'web'}-{i:06d}"
    kind = "rbl" if is_ip else "uribl"
    return SimHost(sid("HT", seed, i), value, name, kind, profile, paused=i % 50 == 49)


class Account:
    """The account's objects and how they drift. `advance(now)` moves it to `now`; the
    `list_host`...`clear_certificate` methods change it on purpose (tests, control routes)."""

    def __init__(
        self,
        hosts: int,
        monitors: int,
        now: float,
        seed: int = 1,
        listed_fraction: float = LISTED_FRACTION,
        churn_hours: float = CHURN_HOURS,
        step: float = STEP,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.outbox: list[dict[str, Any]] | None = None  # webhook events, when a sender wants them
        self.step = step  # the account moves in steps of at least this many seconds
        self.version = 0
        self.profile_ids = [sid("RP", seed, i) for i in range(len(PROFILES))]
        self.intervals = {p: float(PROFILES[i][2]) for i, p in enumerate(self.profile_ids)}
        self.cert_profile_ids = [sid("CP", seed, i) for i in range(2)]
        profiles = self.profile_ids
        self.hosts = {
            h.id: h for h in (_make_host(seed, i, profiles[i % len(profiles)]) for i in range(hosts))
        }
        self._host_list = list(self.hosts.values())
        self._active_hosts = [h for h in self._host_list if not h.paused]
        self._rounds = self._check_rounds()
        self._owed = dict.fromkeys(profiles, 0.0)  # per profile: checks owed but not yet made...
        self._next = dict.fromkeys(profiles, 0)  # ...and the host of its round checked next
        self.listed: set[str] = set()
        self._listed_ids: list[str] | None = None  # sorted(listed), until `listed` changes
        self.monitors: dict[str, SimMonitor] = {}
        for i in range(monitors):
            m = self._make_monitor(seed, i, now)
            self.monitors[m.id] = m
        # When each monitor may next be renewed or cross into its expiry error (`_wake`), as a
        # heap of (time, place in `monitors`, id), stale entries skipped; and the monitors
        # changed on purpose since the last step. Drift looks at those only, in `monitors` order.
        self._place = {m_id: i for i, m_id in enumerate(self.monitors)}
        self._wake: dict[str, float] = {}
        self._wakeups: list[tuple[float, int, str]] = []
        self._touched: set[str] = set(self.monitors)
        # steady state: `listed_fraction` of hosts listed, each listing lasting ~churn_hours
        self.delist_rate = 1.0 / (churn_hours * HOUR)
        self.list_rate = self.delist_rate * listed_fraction / max(1e-9, 1.0 - listed_fraction)
        self.error_rate = 1.0 / (CERT_ERROR_HOURS * HOUR)  # per monitor per second
        self.clear_rate = 1.0 / (CERT_ERROR_CLEAR_HOURS * HOUR)
        self._settle(now, listed_fraction)

    def _make_monitor(self, seed: int, i: int, now: float) -> SimMonitor:
        """Monitor number `i`, expiring between 2 days ago and 120 days on; one in 40 is paused."""
        proto, port = PROTOCOLS[i % len(PROTOCOLS)]
        not_after = now + self.rng.uniform(-2, 120) * DAY
        profile = self.cert_profile_ids[i % 2]
        name, hostname = f"cert-{i:05d}", f"svc{i}.example.com"
        monitor = SimMonitor(
            sid("CM", seed, i), name, hostname, proto, port, profile, not_after, i % 40 == 39
        )
        if i % ONCALL_EVERY == ONCALL_EVERY - 1:
            monitor.contact_group = f"{GROUP_ID},{ONCALL_ID}"
        return monitor

    def _check_rounds(self) -> dict[str, list[SimHost]]:
        """The active hosts of each profile, in the order they are checked: the least recently
        checked first (the rounds start again at their first host)."""
        rounds: dict[str, list[SimHost]] = {p: [] for p in self.profile_ids}
        for h in sorted(self._active_hosts, key=lambda h: h.last_checked or 0.0):
            rounds.setdefault(h.profile, []).append(h)
        return rounds

    def _settle(self, now: float, listed_fraction: float) -> None:
        """The state at start: each host checked within its profile's interval (its round starts
        with the least recently checked), some hosts listed, some certificates broken."""
        for h in self.hosts.values():
            h.last_checked = now - self.rng.uniform(0, HOUR) / HOUR * self.intervals.get(h.profile, HOUR)
            if self.rng.random() < listed_fraction:
                self._list(h, now - self.rng.uniform(0, DAY))
        self._rounds = self._check_rounds()
        for m in self.monitors.values():
            m.last_checked = now - self.rng.uniform(0, HOUR)
            if self.rng.random() < INITIAL_ERROR_SHARE:
                self._error(m, self.rng.choice(ERROR_TYPES))
            self._expiry_error(m)

    # -- changes on purpose -----------------------------------------------------------------

    def list_host(self, host: SimHost, now: float) -> None:
        """List `host` on one to three more RBLs (emits `rbl.host.listed`)."""
        self._list(host, now)
        self.version += 1

    def delist_host(self, host: SimHost) -> None:
        """Delist `host` if it is listed (emits `rbl.host.delisted`)."""
        if host.rbls:
            self._delist(host)
        self.version += 1

    def remove_host(self, host_id: str) -> None:
        """The host is deleted from the account: no route shows it any more."""
        del self.hosts[host_id]
        self._host_list = list(self.hosts.values())
        self._active_hosts = [h for h in self._host_list if not h.paused]
        self._rounds = self._check_rounds()
        self._next = dict.fromkeys(self._rounds, 0)
        self.listed.discard(host_id)
        self._listed_ids = None
        self.version += 1

    def expire_certificate(self, monitor: SimMonitor, now: float, days: float) -> None:
        """The certificate now expires `days` from `now` (an expiry error if that is close)."""
        monitor.not_after = now + days * DAY
        self._expiry_error(monitor)
        self._touched.add(monitor.id)
        self.version += 1

    def renew_certificate(self, monitor: SimMonitor, now: float) -> None:
        """The certificate is replaced by one valid for RENEWED_FOR_DAYS."""
        self._renew(monitor, now)
        self._expiry_error(monitor)
        self._touched.add(monitor.id)
        self.version += 1

    def break_certificate(self, monitor: SimMonitor, error_type: str) -> None:
        """The monitor reports an error of `error_type` (emits `cert.error.trigger`)."""
        self._error(monitor, error_type)
        self._touched.add(monitor.id)
        self.version += 1

    def clear_certificate(self, monitor: SimMonitor) -> None:
        """Every error of the monitor clears, expiry included (emits `cert.error.resolve`)."""
        self._clear(monitor, list(monitor.errors))
        self._touched.add(monitor.id)
        self.version += 1

    # -- changes ----------------------------------------------------------------------------

    def _emit(self, event_type: str, **body: Any) -> None:
        if self.outbox is not None:
            self.outbox.append({"event_type": event_type, **body})

    def _list(self, h: SimHost, when: float) -> None:
        if not h.rbls:
            h.first_listed = when
            self.listed.add(h.id)
            self._listed_ids = None
        h.rbls = sorted(set(h.rbls) | set(self.rng.sample(RBLS, self.rng.choice((1, 1, 1, 2, 3)))))
        if self.outbox is not None:
            details = h.to_json()["listed_details"]
            self._emit("rbl.host.listed", host=h.to_json(), listed=True, total=len(h.rbls), details=details)

    def _delist(self, h: SimHost) -> None:
        h.rbls, h.first_listed = [], None
        self.listed.discard(h.id)
        self._listed_ids = None
        self._emit("rbl.host.delisted", host=h.to_json(), listed=False, total=0, details=[])

    def _current_errors(self, m: SimMonitor) -> list[dict[str, str]]:
        return [{"id": esid, "error_type": kind} for kind, esid in sorted(m.errors.items())]

    def _error(self, m: SimMonitor, kind: str) -> None:
        if kind in m.errors:
            return
        m.errors[kind] = sid("CE", m.id, kind, self.version)
        self._emit(
            "cert.error.trigger",
            monitor=m.to_json(),
            errors=[{"id": m.errors[kind], "error_type": kind}],
            current_errors=self._current_errors(m),
        )

    def _clear(self, m: SimMonitor, kinds: list[str]) -> None:
        gone = [{"id": m.errors.pop(k), "error_type": k} for k in kinds if k in m.errors]
        if gone:
            self._emit(
                "cert.error.resolve",
                monitor=m.to_json(),
                resolved_errors=gone,
                current_errors=self._current_errors(m),
            )

    def _expiry_error(self, m: SimMonitor) -> None:
        if m.not_after - self.now < EXPIRY_ERROR_DAYS * DAY:
            if "expiration" not in m.errors:
                days = int((m.not_after - self.now) // DAY)
                self._emit("cert.expiration.trigger", monitor=m.to_json(), expiry_days=days)
            self._error(m, "expiration")
        else:
            self._clear(m, ["expiration"])

    def _renew(self, m: SimMonitor, now: float) -> None:
        m.not_after = now + RENEWED_FOR_DAYS * DAY
        self._emit("cert.expiration.resolve", monitor=m.to_json(), expiry_days=RENEWED_FOR_DAYS)

    def _events(self, population: int, rate: float, dt: float) -> int:
        """How many of `population` independent events with `rate`/s happen in dt seconds."""
        mean = population * rate * dt
        if mean <= 0:
            return 0
        if mean < POISSON_EXACT_BELOW:  # Poisson by inversion; fine for small means
            n, p, u = 0, math.exp(-mean), self.rng.random()
            cumulative = p
            while u > cumulative and n < population:
                n += 1
                p *= mean / n
                cumulative += p
            return n
        return max(0, min(population, round(self.rng.gauss(mean, math.sqrt(mean)))))

    def advance(self, now: float) -> None:
        """Move the account to `now` (nothing happens before `step` seconds have passed)."""
        dt = now - self.now
        if dt < self.step:
            return
        self.now = now
        changed, checks = self._drift_hosts(now, dt)
        changed |= self._drift_monitors(now, dt)
        if changed or checks:
            self.version += 1

    def _drift_hosts(self, now: float, dt: float) -> tuple[bool, int]:
        """Delistings, listings and checks in `dt` seconds: (anything listed or delisted, checks)."""
        listed = self.listed_ids()
        changed = False
        for host_id in self.rng.sample(listed, self._events(len(listed), self.delist_rate, dt)):
            self._delist(self.hosts[host_id])
            changed = True
        clean = len(self._active_hosts) - len(self.listed)
        for _ in range(self._events(clean, self.list_rate, dt)):
            h = self.rng.choice(self._active_hosts)
            if not h.rbls:
                self._list(h, now)
                changed = True
        return changed, self._check_hosts(now, dt)

    def _check_hosts(self, now: float, dt: float) -> int:
        """The checks of `dt` seconds: each profile's active hosts in rounds, in order (the least
        recently checked next), so that every one is checked once per its profile's interval."""
        checks = 0
        for profile, hosts in self._rounds.items():
            if not hosts:
                continue
            owed = self._owed.get(profile, 0.0) + len(hosts) * dt / self.intervals.get(profile, HOUR)
            n = min(int(owed), len(hosts))
            self._owed[profile] = owed - n if n < len(hosts) else 0.0
            start = self._next.get(profile, 0)
            for k in range(start, start + n):
                hosts[k % len(hosts)].last_checked = now
            self._next[profile] = (start + n) % len(hosts)
            checks += n
        return checks

    def _drift_monitors(self, now: float, dt: float) -> bool:
        """Renewals, expiry errors and other errors appearing and clearing in `dt` seconds."""
        changed = False
        for m in self._due_monitors(now):
            if m.not_after - now < RENEW_DAYS_BEFORE * DAY and not m.paused:
                self._renew(m, now)
                changed = True
            before = len(m.errors)
            self._expiry_error(m)
            changed |= before != len(m.errors)
            self._schedule(m, now)
        monitors = list(self.monitors.values())
        for m in self.rng.sample(monitors, self._events(len(monitors), self.error_rate, dt)):
            self._error(m, self.rng.choice(ERROR_TYPES))
            changed = True
        # the monitors with an error other than "expiration", in `monitors` order
        with_errors = [
            m for m in monitors if m.errors and (len(m.errors) > 1 or "expiration" not in m.errors)
        ]
        for m in self.rng.sample(with_errors, self._events(len(with_errors), self.clear_rate, dt)):
            self._clear(m, [k for k in m.errors if k != "expiration"])
            changed = True
        return changed

    def _due_monitors(self, now: float) -> list[SimMonitor]:
        """The monitors whose renewal or expiry error may be due at `now` (a second early, so
        that rounding never makes one late) or that changed on purpose, in `monitors` order:
        for every other one, a renewal and expiry pass would change nothing."""
        due, wakeups = self._touched, self._wakeups
        self._touched = set()
        while wakeups and wakeups[0][0] <= now:
            when, _, m_id = heapq.heappop(wakeups)
            if self._wake.get(m_id) == when:
                del self._wake[m_id]
                due.add(m_id)
        place = self._place
        return [self.monitors[m_id] for m_id in sorted(due, key=place.__getitem__) if m_id in self.monitors]

    def _schedule(self, m: SimMonitor, now: float) -> None:
        """When `m` may next need a renewal (not paused) or its expiry error (not yet in it)."""
        times = [] if m.paused else [m.not_after - RENEW_DAYS_BEFORE * DAY]
        if not m.not_after - now < EXPIRY_ERROR_DAYS * DAY:
            times.append(m.not_after - EXPIRY_ERROR_DAYS * DAY)
        if times:
            when = min(times) - 1.0
            self._wake[m.id] = when
            heapq.heappush(self._wakeups, (when, self._place[m.id], m.id))
        else:
            self._wake.pop(m.id, None)

    def listed_ids(self) -> list[str]:
        """The ids of the listed hosts, sorted; kept until a host is listed or delisted (do not
        change the list)."""
        if self._listed_ids is None:
            self._listed_ids = sorted(self.listed)
        return self._listed_ids

    def stop_drift(self) -> None:
        """No more random changes: the account changes only on purpose (and certificates still
        age, and are renewed)."""
        self.list_rate = self.delist_rate = self.error_rate = self.clear_rate = 0.0

    # -- what the API shows -----------------------------------------------------------------

    def listings(self) -> list[dict[str, Any]]:
        return [self.hosts[i].to_json() for i in self.listed_ids()]

    def page(self, name: str, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        """One page of a collection and the collection's size, serialising only that page."""
        start = (page - 1) * size
        if name == "hosts":
            return [h.to_json() for h in self._host_list[start : start + size]], len(self._host_list)
        if name == "listings":
            ids = self.listed_ids()
            return [self.hosts[i].to_json() for i in ids[start : start + size]], len(ids)
        if name == "monitors":
            monitors = list(self.monitors.values())
            return [m.to_json() for m in monitors[start : start + size]], len(monitors)
        items = self.collection(name)
        return items[start : start + size], len(items)

    def page_json(self, name: str, page: int, size: int) -> tuple[list[str], int] | None:
        """`page` for hosts and listings, each object as JSON text (`SimHost.json_text`); None
        for the other collections."""
        start = (page - 1) * size
        if name == "hosts":
            hosts = self._host_list[start : start + size]
            return [h.json_text() for h in hosts], len(self._host_list)
        if name == "listings":
            ids = self.listed_ids()
            return [self.hosts[i].json_text() for i in ids[start : start + size]], len(ids)
        return None

    def cert_errors(self) -> list[dict[str, Any]]:
        return [
            {
                "id": esid,
                "monitor_id": m.id,
                "monitor_name": m.name,
                "error_type": kind,
                "message": f"simulated {kind.replace('_', ' ')} error",
            }
            for m in self.monitors.values()
            if m.errors
            for kind, esid in sorted(m.errors.items())
        ]

    def cert_error_count(self) -> int:
        """len(cert_errors()), without writing them."""
        return sum(len(m.errors) for m in self.monitors.values() if m.errors)

    def collection(self, name: str) -> list[dict[str, Any]]:
        """A whole collection by its route name (`hosts`, `profiles`, ...)."""
        if name == "hosts":
            return [h.to_json() for h in self.hosts.values()]
        if name == "listings":
            return self.listings()
        if name == "monitors":
            return [m.to_json() for m in self.monitors.values()]
        if name == "errors":
            return self.cert_errors()
        if name in STATIC_COLLECTIONS:
            return STATIC_COLLECTIONS[name](self)
        raise KeyError(name)

    def profiles(self) -> list[dict[str, Any]]:
        return [
            {
                "id": p,
                "name": name,
                "is_default": i == 0,
                "frequency": frequency,
                "sync_method": "stay_in_sync",
            }
            for i, (p, (name, frequency, _)) in enumerate(zip(self.profile_ids, PROFILES, strict=True))
        ]

    def cert_profiles(self) -> list[dict[str, Any]]:
        """The account's non-deletable "Public Profile (Default)" with the documented defaults
        (API reference, "Create Certificate Profile"), and a stricter one sent with 0/1 flags."""
        public, strict = self.cert_profile_ids
        return [
            {
                "id": public,
                "name": "Public Profile (Default)",
                "expiration_thresholds": "30,14,7",
                "alert_on_expiration": True,
                "alert_on_name_mismatch": True,
                "alert_on_ca_failure": True,
                "alert_on_connection_failure": True,
                "alert_on_caa_failure": False,
                "alert_on_misconfigurations": True,
                "alert_on_changes": True,
                "is_default": True,
            },
            {
                "id": strict,
                "name": "Strict",
                "expiration_thresholds": "60,30,14,7,3",
                **{f"alert_on_{flag}": 1 for flag in ALERT_FLAGS},
                "alert_on_changes": 0,
                "is_default": False,
            },
        ]


# The API reference's `alert_on_*` switches ("Create Certificate Profile"), written out here and
# not taken from exporter.api.records: the simulator speaks the vendor's format on its own (it
# imports none of the parsers), so that a parser that drifts from the reference is caught.
ALERT_FLAGS = (
    "expiration",
    "name_mismatch",
    "ca_failure",
    "connection_failure",
    "caa_failure",
    "misconfigurations",
    "changes",
)


def _sources(_: Account) -> list[dict[str, Any]]:
    return [
        {
            "id": sid("RB", r),
            "host": r,
            "type": "uribl" if "URI" in r or "DBL" in r else "rbl",
            "custom": 0,
            "status": "active",
        }
        for r in RBLS
    ]


# (status, the groups it is in): Operations reaches one confirmed contact (the other is paused);
# the on-call group's only contact never confirmed, so alerts sent to it reach nobody.
CONTACTS = (("active", GROUP_ID), ("paused", GROUP_ID), ("pending", ONCALL_ID))


def _contacts(_: Account) -> list[dict[str, Any]]:
    return [
        {
            "id": sid("CO", i),
            "contact": f"ops{i}@example.com",
            "type": "email",
            "schedule": "every_check",
            "status": status,
            "contact_group": group,
        }
        for i, (status, group) in enumerate(CONTACTS)
    ]


def _groups(_: Account) -> list[dict[str, Any]]:
    return [
        {"id": GROUP_ID, "name": "Operations", "is_default": 1, "contacts": f"{sid('CO', 0)},{sid('CO', 1)}"},
        {"id": ONCALL_ID, "name": "On call", "is_default": 0, "contacts": [sid("CO", 2)]},
    ]


# The collections that do not drift: what the API shows for them.
STATIC_COLLECTIONS: dict[str, Callable[[Account], list[dict[str, Any]]]] = {
    "profiles": Account.profiles,
    "cert_profiles": Account.cert_profiles,
    "sources": _sources,
    "contacts": _contacts,
    "groups": _groups,
}
