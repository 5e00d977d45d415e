"""The soak's webhooks: valid events from the simulated account's drift and the HetrixTools
fleet, bursts of new ones (for a crash in the middle), and hostile ones of many kinds (signed
events with odd values and wrong types, bad signatures, HetrixTools chunks with bad items,
lying Content-Encoding, oversized and deeply nested bodies, replays).

No I/O: it builds bodies and headers; the soak sends them."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import random
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.soak_loop import VirtualClock
from exporter.demo.simulator.account import Account, iso, sid
from exporter.demo.simulator.api import HOSTILE_VALUES, RawJson, dumps
from exporter.demo.simulator.webhooks import HetrixFleet
from exporter.state.events import KNOWN_EVENTS
from exporter.webhooks.signature import sign

SECRETS = ("whsec_soak_primary_" + "a1b2" * 6, "whsec_soak_rotated_" + "c3d4" * 6)
HX_TOKEN = "hx-soak-token-" + "e5f6" * 6
# hostile kinds, drawn uniformly from this tuple: a kind listed n times is drawn n times as often
HOSTILE_DRAW = (
    "signed_odd_fields",
    "signed_odd_fields",
    "signed_odd_fields",
    "signed_odd_fields",
    "signed_path_id",
    "bad_signature",
    "bad_signature",
    "signed_not_json",
    "signed_nested",
    "gzip_lie",
    "wrong_content_type",
    "replay",
    "oversized",
    "wrong_method",
    "hetrix_bad_items",
    "hetrix_bad_items",
    "hetrix_bad_items",
    "hetrix_bad_body",
    "hetrix_bad_token",
    "hetrix_gzip_lie",
)


@dataclass
class Sent:
    kind: str  # "valid", "valid_hetrix", or a hostile kind
    source: str  # "generatorlabs" or "hetrixtools"
    body: bytes
    headers: dict[str, str]
    label: str | None = None  # the event label of a valid event
    monitors: dict[str, int] = field(default_factory=dict)  # hetrix monitors that must show


def label_of(body: bytes) -> str | None:
    """The event label a signed body would be counted under (for telling which events are
    missing when counts differ): `event_type` (or `event`) as text, "other" when unknown."""
    try:
        event = json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
    except (ValueError, OSError, RecursionError):
        return None
    if not isinstance(event, dict):
        return None
    value = event.get("event_type") or event.get("event")
    if value is None or isinstance(value, bool | dict | list):
        return None
    return _event_label(str(value).strip())


def _event_label(event_type: object) -> str:
    return event_type if isinstance(event_type, str) and event_type in KNOWN_EVENTS else "other"


def deep_nest(depth: int) -> bytes:
    return (
        b'{"event_sid":"TA1","event_type":"billing.balance.alert","x":' + b"[" * depth + b"]" * depth + b"}"
    )


class Webhooks:
    """Valid events from the account's drift and the HetrixTools fleet, and hostile ones."""

    def __init__(self, account: Account, clock: VirtualClock, rng: random.Random) -> None:
        self.account = account
        self.clock = clock
        self.rng = rng
        self.fleet = HetrixFleet(40, seed=rng.randrange(1 << 30))
        self.serial = itertools.count(1)
        self.acked: list[Sent] = []  # answered 2xx, not as duplicates
        self.expected_events: Counter[str] = Counter()  # event label -> acknowledged new events
        self.valid_events: Counter[str] = Counter()
        self.hetrix: dict[str, int] = {}  # monitor -> last acknowledged listed count
        self.sent_log: deque[tuple[str, int, str]] = deque(maxlen=20)

    # -- building --------------------------------------------------------------------------

    def _sid(self) -> str:
        return f"TA{next(self.serial):032x}"

    def signed(
        self,
        event: Mapping[str, Any],
        *,
        secret: str | None = None,
        raw: bytes | None = None,
        t: int | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        body = raw if raw is not None else dumps(dict(event))
        stamp = int(self.clock.now) if t is None else t
        return body, {
            "Content-Type": "application/json",
            "X-Webhook-Signature": sign(body, secret or self.rng.choice(SECRETS), stamp),
        }

    def _base(self, event_type: str, **fields: Any) -> dict[str, Any]:
        return {
            "event_sid": self._sid(),
            "event_type": event_type,
            "event_date": iso(self.clock.now),
            **fields,
        }

    def valid_round(self) -> list[Sent]:
        """The account's changes since the last round, now and then an agent, billing or
        certificate-change event, and now and then a HetrixTools chunk."""
        self.account.advance(self.clock.now)
        out = [self._valid(dict(e)) for e in (self.account.outbox or [])]
        self.account.outbox = []
        occasional = self._occasional(self.rng.random())
        if occasional is not None:
            out.append(self._valid(occasional))
        if self.rng.random() < 0.3:
            for chunk in self.fleet.chunks(self.rng.randrange(1, 6)):
                out.append(self._hetrix_chunk("valid_hetrix", chunk))
        return out

    def _occasional(self, roll: float) -> dict[str, Any] | None:
        """For `roll` below 0.4, an agent, billing or certificate-change event (one in ten each)."""
        agent = {"id": sid("AG", 1), "name": "eu-west-1", "status": "active"}
        timeout = {"agent": agent, "timeout_minutes": 15, "instances": [{"id": "i-1"}]}
        if roll < 0.1:
            return {"event_type": "agent.timeout", **timeout}
        if roll < 0.2:
            return {"event_type": "agent.timeout.resolve", **timeout}
        if roll < 0.3:
            balance = f"{self.rng.uniform(5, 20):.2f}"
            return {"event_type": "billing.balance.alert", "balance": balance, "alert_threshold": "15.00"}
        if roll < 0.4 and self.account.monitors:
            monitor = self.rng.choice(list(self.account.monitors.values()))
            return {
                "event_type": "cert.changed",
                "monitor": monitor.to_json(),
                "previous_fingerprint": "SHA256:00",
                "new_fingerprint": "SHA256:11",
            }
        return None

    def _valid(self, event: dict[str, Any]) -> Sent:
        event = {"event_sid": self._sid(), "event_date": iso(self.clock.now), **event}
        body, headers = self.signed(event)
        return Sent("valid", "generatorlabs", body, headers, label=_event_label(event["event_type"]))

    def _hetrix_chunk(self, kind: str, items: list[Any], good: dict[str, int] | None = None) -> Sent:
        if good is None:
            good = {i["monitor"]: int(i["blacklisted_now"]) for i in items}
        return Sent(kind, "hetrixtools", dumps(items), {"Content-Type": "application/json"}, monitors=good)

    def burst(self, n: int) -> list[Sent]:
        """Events and chunks that each name something new (for a crash in the middle)."""
        out = []
        for _ in range(n):
            if self.rng.random() < 0.5:
                out.append(
                    self._valid(
                        {
                            "event_type": self.rng.choice(
                                ("expiring.plan.alert", "billing.renewal.success", "expiring.card.alert")
                            ),
                            "plan": {},
                            "payment": {},
                        }
                    )
                )
            else:
                name = f"burst-{next(self.serial)}.example"
                count = self.rng.randrange(0, 3)
                items = [
                    {
                        "monitor": name,
                        "label": "burst",
                        "blacklisted_now": str(count),
                        "blacklisted_on": [{"rbl": f"rbl{j}.example", "delist": "x"} for j in range(count)]
                        or None,
                    }
                ]
                out.append(self._hetrix_chunk("valid_hetrix", items))
        return out

    # -- hostile ---------------------------------------------------------------------------

    def _odd(self) -> Any:
        return self.rng.choice(HOSTILE_VALUES)

    def _template(self) -> dict[str, Any]:
        host = self.rng.choice(list(self.account.hosts.values())).to_json()
        monitor = self.rng.choice(list(self.account.monitors.values())).to_json()
        agent = {"id": sid("AG", 2), "name": "us-east-1"}
        return self.rng.choice(
            (
                self._base(
                    "rbl.host.listed",
                    host=host,
                    listed=True,
                    total=2,
                    details=[{"host": "Spamhaus ZEN"}, {"host": "SpamCop"}],
                ),
                self._base("rbl.host.delisted", host=host, listed=False, total=0, details=[]),
                self._base("rbl.host.check.completed", host=host, listed=False, total=0),
                self._base("cert.expiration.trigger", monitor=monitor, expiry_days=5),
                self._base("cert.expiration.resolve", monitor=monitor, expiry_days=90),
                self._base(
                    "cert.error.trigger",
                    monitor=monitor,
                    errors=[{"id": "CE1", "error_type": "name_mismatch"}],
                    current_errors=[{"id": "CE1", "error_type": "name_mismatch"}],
                ),
                self._base("cert.error.resolve", monitor=monitor, resolved_errors=[], current_errors=[]),
                self._base("cert.changed", monitor=monitor, previous_fingerprint="a", new_fingerprint="b"),
                self._base("agent.timeout", agent=agent, timeout_minutes=15, instances=[{"id": "i-9"}]),
                self._base("billing.balance.alert", balance="12.50", alert_threshold="15.00"),
                self._base("billing.recharge.failed", payment={"amount": "10.00"}),
            )
        )

    def _mutate(self, event: dict[str, Any]) -> dict[str, Any]:
        """Replace 1-3 fields (top level or one level down) by odd values or wrong types."""
        for _ in range(self.rng.randint(1, 3)):
            key = self.rng.choice(sorted(event))
            value = event[key]
            if isinstance(value, dict) and value and self.rng.random() < 0.6:
                inner = dict(value)
                inner[self.rng.choice(sorted(inner))] = self._odd()
                event[key] = inner
            elif isinstance(value, list) and value and self.rng.random() < 0.5:
                event[key] = [self._odd() for _ in value]
            else:
                event[key] = self._odd()
        return event

    def hostile(self) -> Sent:
        """One hostile webhook of a kind drawn at random (weighted by repetition)."""
        builders: dict[str, Callable[[], Sent]] = {
            "signed_odd_fields": self._h_signed_odd_fields,
            "signed_path_id": self._h_signed_path_id,
            "bad_signature": self._h_bad_signature,
            "signed_not_json": self._h_signed_not_json,
            "signed_nested": self._h_signed_nested,
            "gzip_lie": self._h_gzip_lie,
            "wrong_content_type": self._h_wrong_content_type,
            "replay": self._h_replay,
            "oversized": self._h_oversized,
            "wrong_method": self._h_wrong_method,
            "hetrix_bad_items": self._h_hetrix_bad_items,
            "hetrix_bad_body": self._h_hetrix_bad_body,
            "hetrix_bad_token": self._h_hetrix_bad_token,
            "hetrix_gzip_lie": self._h_hetrix_gzip_lie,
        }
        return builders[self.rng.choice(HOSTILE_DRAW)]()

    def _h_signed_odd_fields(self) -> Sent:
        body, headers = self.signed(self._mutate(self._template()))
        return Sent("signed_odd_fields", "generatorlabs", body, headers, label=label_of(body))

    def _h_signed_path_id(self) -> Sent:
        event = self._template()
        key = next((k for k in ("host", "monitor", "agent") if k in event), None)
        if key is not None:
            event[key] = {
                **event[key],
                "id": self.rng.choice(
                    (
                        "HT3/../../../../etc",
                        "HT" + "0" * 32 + "/../../contact/contacts",
                        "HT%2e%2e%2fetc",
                        "HT00?page=2&x=",
                        "HT#frag",
                        "HT" + "a" * 5000,
                        "\ud800",
                    )
                ),
            }
        body, headers = self.signed(event)
        return Sent("signed_path_id", "generatorlabs", body, headers, label=label_of(body))

    def _h_bad_signature(self) -> Sent:
        event = self._template()
        body = dumps(event)
        now = int(self.clock.now)
        header = self.rng.choice(
            (
                sign(body, "whsec_wrong_secret", now),
                sign(body, SECRETS[0], now - 100_000),
                sign(body, SECRETS[0], now + 100_000),
                f"t={now},v1=é",
                "t=²,v1=00",
                f"t={'9' * 400},v1=00",
                f"t={now}",
                "v1=00",
                "",
                "t=,v1=",
                f"t={now},v1=" + "0" * 5000,
                "garbage",
                f"t=-{now},v1=00",
                f"t={now}.5,v1=00",
                f"t={now},v1=zz\x7f",
            )
        )
        headers = {"Content-Type": "application/json"}
        if header:
            headers["X-Webhook-Signature"] = header
        return Sent("bad_signature", "generatorlabs", body, headers)

    def _h_signed_not_json(self) -> Sent:
        raw = self.rng.choice(
            (
                b"not json",
                b"\xff\xfe\x00",
                b"[1,2,3]",
                b"null",
                b"NaN",
                b'"text"',
                b"\xef\xbb\xbf{}",
                b'{"event_sid": "TA1", ',
                b"{}" * 1000,
                b"",
            )
        )
        body, headers = self.signed({}, raw=raw)
        return Sent("signed_not_json", "generatorlabs", body, headers)

    def _h_signed_nested(self) -> Sent:
        body, headers = self.signed({}, raw=deep_nest(self.rng.choice((1000, 50_000, 200_000))))
        return Sent("signed_nested", "generatorlabs", body, headers)

    def _h_gzip_lie(self) -> Sent:
        body, headers = self.signed(self._template())
        if self.rng.random() < 0.5:  # a real gzip body whose signature covers the compressed bytes
            body = gzip.compress(body)
            body, headers = self.signed({}, raw=body)
        headers["Content-Encoding"] = self.rng.choice(("gzip", "deflate", "br", "x-unknown"))
        return Sent("gzip_lie", "generatorlabs", body, headers, label=label_of(body))

    def _h_wrong_content_type(self) -> Sent:
        body, headers = self.signed(self._template())
        headers["Content-Type"] = self.rng.choice(
            ("text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", "\x7f")
        )
        return Sent("wrong_content_type", "generatorlabs", body, headers, label=label_of(body))

    def _h_replay(self) -> Sent:
        previous = [s for s in self.acked[-50:] if s.source == "generatorlabs"]
        if not previous:
            return self._h_bad_signature()
        old = self.rng.choice(previous)
        event = json.loads(old.body)
        body, headers = (
            (old.body, dict(old.headers)) if self.rng.random() < 0.5 else self.signed(event, raw=old.body)
        )  # the same event, signed anew
        return Sent("replay", "generatorlabs", body, headers, label=label_of(body))

    def _h_oversized(self) -> Sent:
        event = self._base("billing.recharge.success", plan={"note": "x" * (1024 * 1024 + 10)})
        body, headers = self.signed(event)
        return Sent("oversized", "generatorlabs", body, headers, label=label_of(body))

    def _h_wrong_method(self) -> Sent:
        body, headers = self.signed(self._template())
        headers["X-Soak-Method"] = self.rng.choice(("GET", "PUT", "DELETE", "PATCH"))
        return Sent("wrong_method", "generatorlabs", body, headers, label=label_of(body))

    def _bad_item(self) -> Any:
        base: dict[str, Any] = {
            "monitor": f"hostile-{next(self.serial)}.example",
            "label": "hostile",
            "blacklisted_now": "1",
            "blacklisted_on": [{"rbl": "x.example", "delist": "x"}],
        }
        roll = self.rng.random()
        if roll < 0.15:
            return self._odd()  # not an object
        if roll < 0.3:
            base["monitor"] = self._odd()
        elif roll < 0.6:
            base["blacklisted_now"] = self.rng.choice(
                (
                    "inf",
                    "-inf",
                    "NaN",
                    "-5",
                    "1e400",
                    "9" * 400,
                    RawJson("1e400"),
                    math.nan,
                    [],
                    {},
                    True,
                    "2**80",
                    str(2**80),
                    "1.5",
                    "",
                    None,
                    "\ud800",
                )
            )
        elif roll < 0.8:
            base["blacklisted_on"] = self.rng.choice(
                ("zen", {"rbl": "x"}, [1, None, "x"], [{"rbl": self._odd()}], math.inf)
            )
        else:
            base["label"] = self._odd()
        return base

    def _h_hetrix_bad_items(self) -> Sent:
        items: list[Any] = []
        good: dict[str, int] = {}
        for _ in range(self.rng.randint(1, 8)):
            if self.rng.random() < 0.5:
                name = f"mixed-{next(self.serial)}.example"
                count = self.rng.randrange(0, 3)
                good[name] = count
                items.append(
                    {
                        "monitor": name,
                        "label": "mixed",
                        "blacklisted_now": str(count),
                        "blacklisted_on": [{"rbl": f"r{j}.example", "delist": "x"} for j in range(count)]
                        or None,
                    }
                )
            else:
                items.append(self._bad_item())
        return self._hetrix_chunk("hetrix_bad_items", items, good)

    def _h_hetrix_bad_body(self) -> Sent:
        raw = self.rng.choice(
            (
                b"not json",
                b"{}",
                b'{"monitor": "x"}',
                b"null",
                b"NaN",
                b"[" * 100_000,
                b"[]",
                b"\xff\xfe",
                b'[{"monitor": "a", "blacklisted_now": 1e400}]',
            )
        )
        return Sent("hetrix_bad_body", "hetrixtools", raw, {"Content-Type": "application/json"})

    def _h_hetrix_bad_token(self) -> Sent:
        sent = self._h_hetrix_bad_items()
        sent.kind = "hetrix_bad_token"
        sent.headers["X-Soak-Token"] = self.rng.choice(
            ("wrong", HX_TOKEN[:-1], HX_TOKEN + "x", "%00", "a" * 3000)
        )
        sent.monitors = {}
        return sent

    def _h_hetrix_gzip_lie(self) -> Sent:
        sent = self._h_hetrix_bad_items()
        sent.kind = "hetrix_gzip_lie"
        sent.headers["Content-Encoding"] = "gzip"
        sent.monitors = {}  # a body that cannot be decoded applies nothing
        return sent
