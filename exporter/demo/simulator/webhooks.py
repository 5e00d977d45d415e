"""The simulator's webhook sender: signed Generator Labs events as its account changes (plus
agent, billing and certificate-change events now and then), and HetrixTools-style chunks."""

from __future__ import annotations

import json
import random
import secrets
from typing import Any

import aiohttp
import structlog

from exporter.clock import Clock
from exporter.demo.simulator.account import RBLS, Account, iso, sid
from exporter.webhooks.signature import sign

log = structlog.get_logger("exporter.demo.simulator.webhooks")


class HetrixFleet:
    """A few HetrixTools blacklist monitors whose listings drift."""

    def __init__(self, size: int, seed: int = 3) -> None:
        self.rng = random.Random(seed)
        self.monitors: dict[str, list[str]] = {f"192.0.2.{i}": [] for i in range(1, size + 1)}

    def chunks(self, changes: int) -> list[list[dict[str, Any]]]:
        """Change some monitors and return their items, in chunks of at most 100."""
        items = []
        for ip in self.rng.sample(sorted(self.monitors), min(changes, len(self.monitors))):
            before = len(self.monitors[ip])
            zones = ([] if self.monitors[ip] and self.rng.random() < 0.5
                     else sorted(self.rng.sample([r.lower().replace(" ", "-") + ".example" for r in RBLS],
                                                 self.rng.choice((1, 2)))))
            self.monitors[ip] = zones
            items.append({
                "monitor": ip, "label": f"edge {ip.rsplit('.', 1)[1]}",
                "blacklisted_before": str(before), "blacklisted_now": str(len(zones)),
                "blacklisted_on": [{"rbl": z, "delist": f"https://{z}/delist"} for z in zones] or None,
                "links": {"report_link": "https://hetrixtools.com/report/blacklist/sim/"},
            })
        return [items[i:i + 100] for i in range(0, len(items), 100)]


class WebhookSender:
    def __init__(self, account: Account, session: aiohttp.ClientSession, clock: Clock, *,
                 url: str, secret: str, hetrix_url: str | None = None, period: float = 5.0,
                 seed: int = 11) -> None:
        self.account = account
        self.session = session
        self.clock = clock
        self.url = url
        self.secret = secret
        self.hetrix_url = hetrix_url
        self.period = period
        self.rng = random.Random(seed)
        self.fleet = HetrixFleet(30)
        self.sent = 0
        self.quiet = False  # only the account's own changes: no extra agent/billing events
        account.outbox = []

    def _extra(self, first: bool = False) -> list[dict[str, Any]]:
        """Events no account drift produces: agents, billing, certificate replacements (one of
        each kind on the first step, so a demo shows every family at once)."""
        if self.quiet:
            return []
        if first:
            rolls = [0.1, 0.35, 0.45, 0.52]
            return [e for r in rolls for e in self._extra_for(r)]
        return self._extra_for(self.rng.random())

    def _extra_for(self, roll: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        agent = {"id": sid("AG", 1), "name": "eu-west-1", "status": "active"}
        if roll < 0.15:
            out.append({"event_type": "agent.timeout", "agent": agent, "timeout_minutes": 15,
                        "instances": [{"id": f"i-{self.rng.randrange(4)}"}]})
        elif roll < 0.3:
            out.append({"event_type": "agent.timeout.resolve", "agent": agent, "timeout_minutes": 15,
                        "instances": [{"id": f"i-{i}"} for i in range(4)]})
        elif roll < 0.4:
            out.append({"event_type": "billing.balance.alert",
                        "balance": f"{self.rng.uniform(5, 20):.2f}", "alert_threshold": "15.00"})
        elif roll < 0.5 and self.account.monitors:
            monitor = self.rng.choice(list(self.account.monitors.values()))
            out.append({"event_type": "cert.changed", "monitor": monitor.to_json(),
                        "previous_fingerprint": "SHA256:" + secrets.token_hex(8),
                        "new_fingerprint": "SHA256:" + secrets.token_hex(8)})
        elif roll < 0.55:
            out.append({"event_type": self.rng.choice(("billing.recharge.success",
                        "billing.renewal.success", "expiring.card.alert", "expiring.plan.alert")),
                        "plan": {}, "payment": {}, "payment_source": {}})
        return out

    async def post(self, event: dict[str, Any]) -> int:
        now = self.clock.time()
        body = json.dumps({"event_sid": "TA" + secrets.token_hex(16), "event_date": iso(now),
                           **event}).encode()
        headers = {"Content-Type": "application/json",
                   "X-Webhook-Signature": sign(body, self.secret, int(now))}
        async with self.session.post(self.url, data=body, headers=headers) as response:
            self.sent += 1
            return response.status

    async def step(self) -> None:
        first = self.sent == 0 and not self.quiet
        self.account.advance(self.clock.time())
        outbox = self.account.outbox or []
        self.account.outbox = []
        for event in outbox + self._extra(first):
            try:
                await self.post(event)
            except aiohttp.ClientError as err:
                log.warning("simulator.webhook_failed", error=str(err))
        if self.hetrix_url and (first or self.rng.random() < 0.3):
            for chunk in self.fleet.chunks(len(self.fleet.monitors) if first else self.rng.randrange(1, 6)):
                try:
                    async with self.session.post(self.hetrix_url, json=chunk):
                        pass
                except aiohttp.ClientError as err:
                    log.warning("simulator.webhook_failed", error=str(err))

    async def run(self) -> None:
        while True:
            await self.step()
            await self.clock.sleep(self.period)


