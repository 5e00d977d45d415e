"""Pure data: what the exporter polls. Collector names, API paths, resource keys and priorities.

Priority tiers decide what the planner stretches first when the budget is tight: alerting data
(listings, certificate errors) stays fresh longest; primary inventory (hosts, monitors) defines
which series exist; secondary inventory (RBL and certificate profiles, sources, contacts, groups)
is stretched first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Tier(enum.IntEnum):
    ALERTING = 0
    INVENTORY = 1
    SECONDARY = 2


@dataclass(frozen=True, slots=True)
class Endpoint:
    collector: str
    path: str  # relative to api.base_url, with the `.json` suffix every SDK appends
    key: str  # resource-named list key: older SDK fixtures put the list there, not under `data`
    tier: Tier
    default_interval: float
    default_enabled: bool = True
    # Cheap change detection: the vendor's Zabbix template polls these; the body is a bare number
    # and the path has no .json suffix.
    count_path: str | None = None


ENDPOINTS: dict[str, Endpoint] = {
    e.collector: e
    for e in (
        Endpoint(
            "rbl_listings",
            "rbl/listings.json",
            "listings",
            Tier.ALERTING,
            60.0,
            count_path="rbl/listings/count",
        ),
        Endpoint(
            "cert_errors", "cert/errors.json", "errors", Tier.ALERTING, 60.0, count_path="cert/errors/count"
        ),
        Endpoint("rbl_hosts", "rbl/hosts.json", "hosts", Tier.INVENTORY, 900.0),
        Endpoint("cert_monitors", "cert/monitors.json", "monitors", Tier.INVENTORY, 900.0),
        Endpoint("rbl_profiles", "rbl/profiles.json", "profiles", Tier.SECONDARY, 3600.0),
        Endpoint("cert_profiles", "cert/profiles.json", "profiles", Tier.SECONDARY, 3600.0),
        Endpoint("rbl_sources", "rbl/sources.json", "sources", Tier.SECONDARY, 21600.0),
        Endpoint("contacts", "contact/contacts.json", "contacts", Tier.SECONDARY, 21600.0),
        Endpoint("contact_groups", "contact/groups.json", "groups", Tier.SECONDARY, 21600.0),
    )
}

COLLECTORS: tuple[str, ...] = tuple(ENDPOINTS)


def route_of(path: str) -> str:
    """The route of an API path, as errors, logs and the `endpoint` label name it: the path
    without the `.json` suffix every official SDK appends (`rbl/hosts.json` -> `rbl/hosts`).
    Count paths have no suffix and are their own route."""
    return path.removesuffix(".json")
