"""Pure: a simulated Generator Labs account that changes over (injected) time.

Hosts get listed and delisted, certificates approach expiry and are renewed, certificate errors
appear and clear. Objects are shaped like the v3 samples the v4 API keeps "backward compatible"
(evidence §4): `listed` as 0/1, v3-style local dates, `listed_details[].host` = the RBL's name.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

RBLS = (
    "Spamhaus ZEN", "Barracuda Central", "SpamCop", "SORBS SPAM", "UCEPROTECT Level 1",
    "PSBL", "Mailspike BL", "SURBL multi", "URIBL black", "Spamhaus DBL", "Google Safe Browsing",
    "Invaluement ivmSIP", "Truncate", "JustSpam", "Abusix Mail Intelligence",
)
ERROR_TYPES = ("name_mismatch", "ca_verification", "chain_integrity", "connection", "dns_caa")
PROTOCOLS = (("https", 443), ("smtps", 465), ("imaps", 993), ("ldaps", 636), ("https", 443))
EST = timezone(timedelta(hours=-5))


def sid(prefix: str, *parts: object) -> str:
    """Stable SIDs: two letters and 32 hex digits, as the API's (evidence §2)."""
    digest = hashlib.md5(":".join(map(str, (prefix, *parts))).encode(), usedforsecurity=False)
    return prefix + digest.hexdigest()


def v3_date(ts: float | None) -> str:
    """`2016-11-07 21:01:33 EST`, or "" for none (evidence §4.1)."""
    if ts is None:
        return ""
    return _v3_date(int(ts))


@functools.lru_cache(maxsize=65536)
def _v3_date(ts: int) -> str:
    return datetime.fromtimestamp(ts, EST).strftime("%Y-%m-%d %H:%M:%S EST")


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
        listed = bool(self.rbls)
        return {
            "id": self.id, "host": self.host, "name": self.name, "type": self.type, "parent": "",
            "status": "paused" if self.paused else "active", "profile": self.profile,
            "contact_group": "CG" + "0" * 32, "tags": ["demo"],
            "last_checked": v3_date(self.last_checked), "first_listed": v3_date(self.first_listed),
            "listed_period": "", "listed": 1 if listed else 0, "listed_count": len(self.rbls),
            "listed_details": [{"host": r, "website": "", "details": "Listed (simulated)"}
                               for r in self.rbls],
        }


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

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "hostname": self.hostname,
            "protocol": self.protocol, "port": self.port, "profile": self.profile,
            "contact_group": "CG" + "0" * 32, "status": "paused" if self.paused else "active",
            "tags": [], "expiration_date": iso(self.not_after),
            "last_checked": v3_date(self.last_checked),
        }


class Account:
    """The account's objects and how they drift. `advance(now)` moves it to `now`."""

    def __init__(self, hosts: int, monitors: int, now: float, seed: int = 1,
                 listed_fraction: float = 0.05, churn_hours: float = 6.0, step: float = 60.0) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.outbox: list[dict[str, Any]] | None = None  # webhook events, when a sender wants them
        self.step = step  # the account moves in steps of at least this many seconds
        self.version = 0
        self.profile_ids = [sid("RP", seed, i) for i in range(3)]
        self.cert_profile_ids = [sid("CP", seed, i) for i in range(2)]
        self.hosts: dict[str, SimHost] = {}
        for i in range(hosts):
            is_ip = i % 4 != 3
            value = f"198.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" if is_ip else f"mail{i}.example.com"
            h = SimHost(sid("HT", seed, i), value, f"{'mx' if is_ip else 'web'}-{i:06d}",
                        "rbl" if is_ip else "uribl", self.profile_ids[i % 3], paused=i % 50 == 49)
            self.hosts[h.id] = h
        self._host_list = list(self.hosts.values())
        self._active_hosts = [h for h in self._host_list if not h.paused]
        self.listed: set[str] = set()
        self.monitors: dict[str, SimMonitor] = {}
        for i in range(monitors):
            proto, port = PROTOCOLS[i % len(PROTOCOLS)]
            m = SimMonitor(sid("CM", seed, i), f"cert-{i:05d}", f"svc{i}.example.com", proto, port,
                           self.cert_profile_ids[i % 2], now + self.rng.uniform(-2, 120) * 86400,
                           paused=i % 40 == 39)
            self.monitors[m.id] = m
        # steady state: `listed_fraction` of hosts listed, each listing lasting ~churn_hours
        self.delist_rate = 1.0 / (churn_hours * 3600.0)
        self.list_rate = self.delist_rate * listed_fraction / max(1e-9, 1.0 - listed_fraction)
        self.error_rate = 1.0 / (48 * 3600.0)  # per monitor per second
        self.clear_rate = 1.0 / (2 * 3600.0)
        for h in self.hosts.values():
            h.last_checked = now - self.rng.uniform(0, 3600)
            if self.rng.random() < listed_fraction:
                self._list(h, now - self.rng.uniform(0, 86400))
        for m in self.monitors.values():
            m.last_checked = now - self.rng.uniform(0, 3600)
            if self.rng.random() < 0.05:
                self._error(m, self.rng.choice(ERROR_TYPES))
            self._expiry_error(m)

    # -- changes ----------------------------------------------------------------------------

    def _emit(self, event_type: str, **body: Any) -> None:
        if self.outbox is not None:
            self.outbox.append({"event_type": event_type, **body})

    def _list(self, h: SimHost, when: float) -> None:
        if not h.rbls:
            h.first_listed = when
            self.listed.add(h.id)
        h.rbls = sorted(set(h.rbls) | set(self.rng.sample(RBLS, self.rng.choice((1, 1, 1, 2, 3)))))
        if self.outbox is not None:
            details = h.to_json()["listed_details"]
            self._emit("rbl.host.listed", host=h.to_json(), listed=True, total=len(h.rbls),
                       details=details)

    def _delist(self, h: SimHost) -> None:
        h.rbls, h.first_listed = [], None
        self.listed.discard(h.id)
        self._emit("rbl.host.delisted", host=h.to_json(), listed=False, total=0, details=[])

    def _current_errors(self, m: SimMonitor) -> list[dict[str, str]]:
        return [{"id": esid, "error_type": kind} for kind, esid in sorted(m.errors.items())]

    def _error(self, m: SimMonitor, kind: str) -> None:
        if kind in m.errors:
            return
        m.errors[kind] = sid("CE", m.id, kind, self.version)
        self._emit("cert.error.trigger", monitor=m.to_json(),
                   errors=[{"id": m.errors[kind], "error_type": kind}],
                   current_errors=self._current_errors(m))

    def _clear(self, m: SimMonitor, kinds: list[str]) -> None:
        gone = [{"id": m.errors.pop(k), "error_type": k} for k in kinds if k in m.errors]
        if gone:
            self._emit("cert.error.resolve", monitor=m.to_json(), resolved_errors=gone,
                       current_errors=self._current_errors(m))

    def _expiry_error(self, m: SimMonitor) -> None:
        if m.not_after - self.now < 14 * 86400:
            if "expiration" not in m.errors:
                self._emit("cert.expiration.trigger", monitor=m.to_json(),
                           expiry_days=int((m.not_after - self.now) // 86400))
            self._error(m, "expiration")
        else:
            self._clear(m, ["expiration"])

    def _events(self, population: int, rate: float, dt: float) -> int:
        """How many of `population` independent events with `rate`/s happen in dt seconds."""
        mean = population * rate * dt
        if mean <= 0:
            return 0
        if mean < 30:  # Poisson by inversion; fine for small means
            n, p, u = 0, math.exp(-mean), self.rng.random()
            cumulative = p
            while u > cumulative and n < population:
                n += 1
                p *= mean / n
                cumulative += p
            return n
        return max(0, min(population, round(self.rng.gauss(mean, math.sqrt(mean)))))

    def advance(self, now: float) -> None:
        dt = now - self.now
        if dt < self.step:
            return
        self.now = now
        hosts = self._host_list
        listed = sorted(self.listed)
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
        checks = min(self._events(len(hosts), 1 / 3600.0, dt), len(hosts))
        for h in self.rng.sample(hosts, checks):
            h.last_checked = now
        for m in self.monitors.values():
            if m.not_after - now < 3 * 86400 and not m.paused:  # renewed a few days before expiry
                m.not_after = now + 90 * 86400
                self._emit("cert.expiration.resolve", monitor=m.to_json(), expiry_days=90)
                changed = True
            before = len(m.errors)
            self._expiry_error(m)
            changed |= before != len(m.errors)
        monitors = list(self.monitors.values())
        for m in self.rng.sample(monitors, self._events(len(monitors), self.error_rate, dt)):
            self._error(m, self.rng.choice(ERROR_TYPES))
            changed = True
        with_errors = [m for m in monitors if set(m.errors) - {"expiration"}]
        for m in self.rng.sample(with_errors, self._events(len(with_errors), self.clear_rate, dt)):
            self._clear(m, [k for k in m.errors if k != "expiration"])
            changed = True
        if changed or checks:
            self.version += 1

    # -- what the API shows -----------------------------------------------------------------

    def listings(self) -> list[dict[str, Any]]:
        return [self.hosts[i].to_json() for i in sorted(self.listed)]

    def page(self, name: str, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        """One page of a collection and the collection's size, serialising only that page."""
        start = (page - 1) * size
        if name == "hosts":
            return [h.to_json() for h in self._host_list[start:start + size]], len(self._host_list)
        if name == "listings":
            ids = sorted(self.listed)
            return [self.hosts[i].to_json() for i in ids[start:start + size]], len(ids)
        if name == "monitors":
            monitors = list(self.monitors.values())
            return [m.to_json() for m in monitors[start:start + size]], len(monitors)
        items = self.collection(name)
        return items[start:start + size], len(items)

    def cert_errors(self) -> list[dict[str, Any]]:
        return [
            {"id": esid, "monitor_id": m.id, "monitor_name": m.name, "error_type": kind,
             "message": f"simulated {kind.replace('_', ' ')} error"}
            for m in self.monitors.values() for kind, esid in sorted(m.errors.items())
        ]

    def collection(self, name: str) -> list[dict[str, Any]]:
        if name == "hosts":
            return [h.to_json() for h in self.hosts.values()]
        if name == "listings":
            return self.listings()
        if name == "monitors":
            return [m.to_json() for m in self.monitors.values()]
        if name == "errors":
            return self.cert_errors()
        if name == "profiles":
            return [{"id": p, "name": f"Profile {i}", "is_default": i == 0, "frequency": "1_hour"}
                    for i, p in enumerate(self.profile_ids)]
        if name == "sources":
            return [{"id": sid("RB", r), "host": r, "type": "uribl" if "URI" in r or "DBL" in r
                     else "rbl", "custom": 0, "status": "active"} for r in RBLS]
        if name == "contacts":
            return [{"id": sid("CO", i), "contact": f"ops{i}@example.com", "type": "email",
                     "schedule": "every_check", "status": "active"} for i in range(3)]
        if name == "groups":
            return [{"id": "CG" + "0" * 32, "name": "Operations", "contacts": [sid("CO", 0)]}]
        raise KeyError(name)
