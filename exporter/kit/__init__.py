"""The alerting and dashboard kit that ships with the exporter: the Prometheus alert rules (with
their thresholds and runbook links filled in), the Grafana dashboards and an example Alertmanager
configuration, as text for an operator (`generatorlabs-exporter print ...`) or a file in the
repository (deploy/prometheus/alerts.yaml, grafana/dashboards/, deploy/alertmanager/ are these
with the defaults, tests keep them in step).

Pure: the texts are read from this package's data files (importlib.resources) and returned; no
other I/O. Every rule and panel keeps exporters apart by `job` and `instance`, so that one
Prometheus can scrape one exporter per account.

Thresholds (`rules(thresholds={...})`; names and defaults in THRESHOLDS, meanings in
THRESHOLD_HELP) are written into the rules when they are generated:

    cert_expiry_warning_days    14    GeneratorLabsCertificateExpiringSoon: fewer days left than this
    cert_expiry_critical_days    3    GeneratorLabsCertificateExpiringVerySoon: fewer days left
    rbl_listings_critical        3    GeneratorLabsHostListedWidely: listed on this many RBLs or more
    rbl_listed_critical_hours   24    GeneratorLabsHostListedForLong: listed for longer than this
    budget_used_ratio         0.95    GeneratorLabsBudgetNearlySpent: share of the hourly budget used
    webhook_signature_failures   5    GeneratorLabsWebhookSignatureFailures: more failures in 15 min
    stale_intervals              3    GeneratorLabsDataStale: data older than this many intervals

Runbook links are `<runbook_base>#runbook-<alert>`, anchors of the README's "Runbooks" section.
RUNBOOK_BASE, the default, is the relative `README.md`, the README that ships with the project:
set `runbook_base` to the address your operators can open (your repository's or wiki's README
page), for example `https://git.example.com/ops/generatorlabs-exporter/blob/main/README.md`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from importlib.resources import files
from types import MappingProxyType

RUNBOOK_BASE = "README.md"

THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {
        "cert_expiry_warning_days": 14,
        "cert_expiry_critical_days": 3,
        "rbl_listings_critical": 3,
        "rbl_listed_critical_hours": 24,
        "budget_used_ratio": 0.95,
        "webhook_signature_failures": 5,
        "stale_intervals": 3,
    }
)

THRESHOLD_HELP: Mapping[str, str] = MappingProxyType(
    {
        "cert_expiry_warning_days": "a certificate with fewer days left warns (ExpiringSoon)",
        "cert_expiry_critical_days": "a certificate with fewer days left is critical (ExpiringVerySoon)",
        "rbl_listings_critical": "a host listed on this many RBLs or more is critical (HostListedWidely)",
        "rbl_listed_critical_hours": "a host listed for longer than this is critical (HostListedForLong)",
        "budget_used_ratio": "share of the hourly API budget used above which BudgetNearlySpent fires",
        "webhook_signature_failures": "webhooks failing verification in 15 min above which an alert fires",
        "stale_intervals": "data older than this many planned intervals is stale (DataStale)",
    }
)

DASHBOARDS = ("exporter-health.json", "rbl-certificates.json")

_PLACEHOLDER = re.compile(r"<<(\w+)>>")


def _data(name: str) -> str:
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


def _number(value: float) -> str:
    """A threshold as PromQL and people write it: 14, not 14.0; 0.95 as is."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def checked_thresholds(thresholds: Mapping[str, float] | None) -> dict[str, float]:
    """THRESHOLDS with `thresholds` applied. ValueError for an unknown name (naming the known
    ones), a value that is not a finite number >= 0, a ratio above 1, or a critical expiry
    threshold above the warning one."""
    merged = dict(THRESHOLDS)
    for name, given in (thresholds or {}).items():
        value: object = given  # callers (a CLI, a script) may pass anything
        if name not in THRESHOLDS:
            raise ValueError(f"unknown threshold {name!r}; known: {', '.join(THRESHOLDS)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"threshold {name}: must be a finite number, got {value!r}")
        if value < 0:
            raise ValueError(f"threshold {name}: must be >= 0, got {value!r}")
        merged[name] = float(value)
    if merged["budget_used_ratio"] > 1:
        raise ValueError(
            f"threshold budget_used_ratio: must be at most 1, got {merged['budget_used_ratio']!r}"
        )
    if merged["cert_expiry_critical_days"] > merged["cert_expiry_warning_days"]:
        raise ValueError("threshold cert_expiry_critical_days must not exceed cert_expiry_warning_days")
    return merged


def rules(thresholds: Mapping[str, float] | None = None, runbook_base: str | None = None) -> str:
    """The Prometheus rule file (YAML): THRESHOLDS overridden by `thresholds`, runbook links under
    `runbook_base` (default RUNBOOK_BASE). ValueError for a bad threshold or runbook base."""
    values = checked_thresholds(thresholds)
    base = RUNBOOK_BASE if runbook_base is None else runbook_base.rstrip("#")
    if not base or any(c.isspace() or c in '"\\' for c in base):
        raise ValueError(f"runbook base must be a URL without spaces or quotes, got {runbook_base!r}")
    fill = {name: _number(value) for name, value in values.items()} | {"runbook_base": base}
    body = _PLACEHOLDER.sub(lambda m: fill[m.group(1)], _data("rules.template.yaml"))
    settings = ", ".join(f"{name}={fill[name]}" for name in THRESHOLDS)
    header = (
        "# Alerting and recording rules for generatorlabs-exporter, generated by exporter.kit.rules()\n"
        "# (`generatorlabs-exporter print rules`); do not edit: generate again with other settings.\n"
        f"# Thresholds: {settings}\n"
        f"# Runbooks: {base}#runbook-...\n"
        "# Check: promtool check rules <file>\n"
    )
    return header + body


def dashboards() -> dict[str, str]:
    """The Grafana dashboards: file name -> dashboard JSON text."""
    return {name: _data(f"dashboards/{name}") for name in DASHBOARDS}


def alertmanager_example() -> str:
    """An example Alertmanager configuration routing these alerts by severity (YAML)."""
    return _data("alertmanager.yml")
