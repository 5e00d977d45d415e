"""I/O (HTTP POSTs): the simulator's webhook sender. Signed Generator Labs events as its account
changes (plus agent, billing and certificate-change events now and then), and HetrixTools-style
blacklist chunks from a small drifting fleet (`HetrixFleet`, pure)."""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog

from exporter.clock import Clock
from exporter.demo.simulator.account import RBLS, Account, iso, sid
from exporter.webhooks.signature import sign

log = structlog.get_logger("exporter.demo.simulator.webhooks")

HETRIX_CHUNK = 100  # "each containing a maximum of 100 items per chunk" (HetrixTools webhook docs)
HETRIX_FLEET = 30  # HetrixTools monitors the sender drifts
HETRIX_ROUND_SHARE = 0.3  # rounds after the first that also send HetrixTools chunks
PERIOD = 5.0  # seconds between rounds
# One roll per round picks at most one extra event (see `_extra_for`); the first round uses these
# rolls so that a demo shows an agent, a billing and a certificate-change event at once.
FIRST_ROUND_ROLLS = (0.1, 0.35, 0.45, 0.52)
AGENT = {"id": sid("AG", 1), "name": "eu-west-1", "status": "active"}
AGENT_INSTANCES = 4
BILLING_EVENTS = (
    "billing.recharge.success",
    "billing.renewal.success",
    "expiring.card.alert",
    "expiring.plan.alert",
)
HETRIX_CLEAR_SHARE = 0.5  # a listed HetrixTools monitor that changes is delisted this often
HETRIX_CHANGES = (1, 6)  # monitors changed in a round after the first: at least 1, fewer than 6


class HetrixFleet:
    """A few HetrixTools blacklist monitors whose listings drift."""

    def __init__(self, size: int, seed: int = 3) -> None:
        self.rng = random.Random(seed)
        self.monitors: dict[str, list[str]] = {f"192.0.2.{i}": [] for i in range(1, size + 1)}

    def chunks(self, changes: int) -> list[list[dict[str, Any]]]:
        """Change some monitors and return their items, in chunks of at most HETRIX_CHUNK."""
        items = []
        for ip in self.rng.sample(sorted(self.monitors), min(changes, len(self.monitors))):
            before = len(self.monitors[ip])
            zones = (
                []
                if self.monitors[ip] and self.rng.random() < HETRIX_CLEAR_SHARE
                else sorted(
                    self.rng.sample(
                        [r.lower().replace(" ", "-") + ".example" for r in RBLS], self.rng.choice((1, 2))
                    )
                )
            )
            self.monitors[ip] = zones
            items.append(
                {
                    "monitor": ip,
                    "label": f"edge {ip.rsplit('.', 1)[1]}",
                    "blacklisted_before": str(before),
                    "blacklisted_now": str(len(zones)),
                    "blacklisted_on": [{"rbl": z, "delist": f"https://{z}/delist"} for z in zones] or None,
                    "links": {"report_link": "https://hetrixtools.com/report/blacklist/sim/"},
                }
            )
        return [items[i : i + HETRIX_CHUNK] for i in range(0, len(items), HETRIX_CHUNK)]


class WebhookSender:
    """Every `period` seconds: move the account on and POST what changed, signed with `secret`.

    With `quiet`, only the account's own changes are sent (no extra agent/billing events)."""

    def __init__(
        self,
        account: Account,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        url: str,
        secret: str,
        hetrix_url: str | None = None,
        period: float = PERIOD,
        seed: int = 11,
        quiet: bool = False,
    ) -> None:
        self.account = account
        self.session = session
        self.clock = clock
        self.url = url
        self.secret = secret
        self.hetrix_url = hetrix_url
        self.period = period
        self.rng = random.Random(seed)
        self.fleet = HetrixFleet(HETRIX_FLEET)
        self.sent = 0
        self.quiet = quiet
        account.outbox = []

    def _extra(self, first: bool = False) -> list[dict[str, Any]]:
        """Events no account drift produces: agents, billing, certificate replacements (one of
        each kind on the first step, so a demo shows every family at once)."""
        if self.quiet:
            return []
        if first:
            return [e for r in FIRST_ROUND_ROLLS for e in self._extra_for(r)]
        return self._extra_for(self.rng.random())

    def _extra_for(self, roll: float) -> list[dict[str, Any]]:
        """The extra event a roll in [0, 1) lands on: agent timeouts and their resolution, a low
        balance, a replaced certificate, another billing event, or (almost half the time) none."""
        bands: tuple[tuple[float, Callable[[], dict[str, Any] | None]], ...] = (
            (0.15, self._agent_timeout),
            (0.3, self._agent_timeout_resolve),
            (0.4, self._balance_alert),
            (0.5, self._cert_changed),  # none without monitors: the next band's event instead
            (0.55, self._billing_event),
        )
        for upper, build in bands:
            event = build() if roll < upper else None
            if event is not None:
                return [event]
        return []

    def _agent_timeout(self) -> dict[str, Any]:
        instances = [{"id": f"i-{self.rng.randrange(AGENT_INSTANCES)}"}]
        return {
            "event_type": "agent.timeout",
            "agent": dict(AGENT),
            "timeout_minutes": 15,
            "instances": instances,
        }

    def _agent_timeout_resolve(self) -> dict[str, Any]:
        instances = [{"id": f"i-{i}"} for i in range(AGENT_INSTANCES)]
        return {
            "event_type": "agent.timeout.resolve",
            "agent": dict(AGENT),
            "timeout_minutes": 15,
            "instances": instances,
        }

    def _balance_alert(self) -> dict[str, Any]:
        balance = f"{self.rng.uniform(5, 20):.2f}"
        return {"event_type": "billing.balance.alert", "balance": balance, "alert_threshold": "15.00"}

    def _cert_changed(self) -> dict[str, Any] | None:
        if not self.account.monitors:
            return None
        monitor = self.rng.choice(list(self.account.monitors.values()))
        return {
            "event_type": "cert.changed",
            "monitor": monitor.to_json(),
            "previous_fingerprint": "SHA256:" + secrets.token_hex(8),
            "new_fingerprint": "SHA256:" + secrets.token_hex(8),
        }

    def _billing_event(self) -> dict[str, Any]:
        event_type = self.rng.choice(BILLING_EVENTS)
        return {"event_type": event_type, "plan": {}, "payment": {}, "payment_source": {}}

    async def post(self, event: dict[str, Any]) -> int:
        """POST one event, signed as Generator Labs does (X-Webhook-Signature); the status."""
        now = self.clock.time()
        body = json.dumps(
            {"event_sid": "TA" + secrets.token_hex(16), "event_date": iso(now), **event}
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Signature": sign(body, self.secret, int(now)),
        }
        async with self.session.post(self.url, data=body, headers=headers) as response:
            self.sent += 1
            return response.status

    async def step(self) -> None:
        """One round: the account's changes and the extra events, and maybe HetrixTools chunks."""
        first = self.sent == 0 and not self.quiet
        self.account.advance(self.clock.time())
        outbox = self.account.outbox or []
        self.account.outbox = []
        for event in outbox + self._extra(first):
            try:
                await self.post(event)
            except aiohttp.ClientError as err:
                log.warning("simulator.webhook_failed", error=str(err))
        if self.hetrix_url and (first or self.rng.random() < HETRIX_ROUND_SHARE):
            for chunk in self.fleet.chunks(
                len(self.fleet.monitors) if first else self.rng.randrange(*HETRIX_CHANGES)
            ):
                try:
                    async with self.session.post(self.hetrix_url, json=chunk):
                        pass
                except aiohttp.ClientError as err:
                    log.warning("simulator.webhook_failed", error=str(err))

    async def run(self) -> None:
        """Rounds until cancelled."""
        while True:
            await self.step()
            await self.clock.sleep(self.period)
