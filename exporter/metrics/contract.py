"""Pure data: the metric contract. Every name, type, label set, source and presence rule.

This list is the public API: the renderer and the self-metrics follow it, a test pins it against
a real scrape, and the README's metric table is generated from it (`python -m exporter.metrics.contract`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    type: str  # gauge | counter | histogram
    labels: tuple[str, ...]
    help: str
    source: str  # the collector or subsystem that fills it
    presence: str  # when the series exist


def _m(name: str, mtype: str, labels: str, help_: str, source: str, presence: str,
       prefix: str = "generatorlabs_") -> MetricSpec:
    return MetricSpec(f"{prefix}{name}", mtype, tuple(labels.split()), help_, source, presence)


ALWAYS = "always"
PER_HOST = "one per host while the host data is fresh"
PER_MONITOR = "one per monitor while the monitor data is fresh"

DATA_METRICS: tuple[MetricSpec, ...] = (
    _m("rbl_host_info", "gauge", "host_id host name host_kind profile_id",
       "RBL-monitored host; always 1, carries the host's names", "rbl_hosts, rbl_listings", PER_HOST),
    _m("rbl_host_listed", "gauge", "host_id", "1 if the host is listed on at least one RBL, else 0",
       "rbl_listings, rbl_hosts", PER_HOST),
    _m("rbl_host_listings", "gauge", "host_id", "Number of RBLs currently listing the host",
       "rbl_listings, rbl_hosts", PER_HOST),
    _m("rbl_listing_info", "gauge", "host_id rbl", "The host is listed on this RBL; always 1",
       "rbl_listings, rbl_hosts", "one per (host, RBL) only while listed"),
    _m("rbl_host_paused", "gauge", "host_id", "1 if checks of the host are paused, else 0",
       "rbl_hosts", PER_HOST),
    _m("rbl_host_last_checked_timestamp_seconds", "gauge", "host_id",
       "When Generator Labs last checked the host", "rbl_hosts, rbl_listings",
       "per host once the API reports a check time"),
    _m("rbl_host_first_listed_timestamp_seconds", "gauge", "host_id",
       "When the host's current listing began", "rbl_listings, rbl_hosts",
       "per host only while listed (and the API gives the date)"),
    _m("rbl_hosts", "gauge", "", "Number of RBL-monitored hosts on the account", "rbl_hosts",
       "while the host data is fresh"),
    _m("rbl_hosts_listed", "gauge", "", "Number of hosts listed on at least one RBL",
       "rbl_listings, rbl_hosts", "while listing or host data is fresh"),
    _m("cert_monitor_info", "gauge", "monitor_id name hostname protocol port profile_id",
       "Certificate monitor; always 1, carries its names", "cert_monitors", PER_MONITOR),
    _m("cert_monitor_paused", "gauge", "monitor_id", "1 if the monitor is paused, else 0",
       "cert_monitors", PER_MONITOR),
    _m("cert_expiry_days", "gauge", "monitor_id",
       "Days until the certificate expires, negative once expired", "cert_monitors",
       "per monitor when the API gives an expiry date or days"),
    _m("cert_not_after_timestamp_seconds", "gauge", "monitor_id",
       "When the certificate expires (notAfter)", "cert_monitors",
       "per monitor when the API gives an expiry date"),
    _m("cert_active_errors", "gauge", "monitor_id", "Number of active certificate errors",
       "cert_errors", "per monitor while the error data is fresh"),
    _m("cert_error_info", "gauge", "monitor_id reason",
       "An active certificate error of this reason; always 1", "cert_errors",
       "one per (monitor, reason) only while active"),
    _m("cert_errors", "gauge", "", "Number of active certificate errors on the account",
       "cert_errors", "while the error data is fresh"),
    _m("rbl_profile_info", "gauge", "profile_id name", "RBL monitoring profile; always 1",
       "rbl_profiles", "one per profile while fresh"),
    _m("rbl_source_info", "gauge", "source_id rbl host_kind", "RBL data source; always 1",
       "rbl_sources", "one per source while fresh"),
    _m("rbl_source_paused", "gauge", "source_id", "1 if the RBL source is paused, else 0",
       "rbl_sources", "one per source while fresh"),
    _m("contact_info", "gauge", "contact_id contact_kind", "Alert contact; always 1",
       "contacts", "one per contact while fresh"),
    _m("contact_paused", "gauge", "contact_id", "1 if the contact is paused, else 0",
       "contacts", "one per contact while fresh"),
    _m("contact_group_info", "gauge", "group_id name", "Contact group; always 1",
       "contact_groups", "one per group while fresh"),
    _m("cert_changes_total", "counter", "monitor_id",
       "Certificate replacements reported by cert.changed webhooks", "webhooks",
       "per known monitor after its first cert.changed"),
    _m("cert_last_change_timestamp_seconds", "gauge", "monitor_id",
       "When the certificate was last replaced (cert.changed)", "webhooks",
       "per known monitor after its first cert.changed"),
    _m("agent_info", "gauge", "agent_id name", "Monitoring agent seen in agent.* webhooks; always 1",
       "webhooks", "per agent after its first agent.* event"),
    _m("agent_timed_out", "gauge", "agent_id", "1 while the agent is timed out (agent.timeout), else 0",
       "webhooks", "per agent after its first agent.* event"),
    _m("agent_timed_out_instances", "gauge", "agent_id", "Agent instances currently timed out",
       "webhooks", "per agent after its first agent.* event"),
    _m("billing_balance_usd", "gauge", "", "Account balance from the last billing.balance.alert",
       "webhooks", "after a billing.balance.alert"),
    _m("billing_balance_threshold_usd", "gauge", "", "Low-balance alert threshold from the last "
       "billing.balance.alert", "webhooks", "after a billing.balance.alert"),
    _m("webhook_events_total", "counter", "event",
       "Verified Generator Labs webhook events applied, by event type (unknown types: other)",
       "webhooks", "per event type after one event"),
    _m("webhook_last_event_timestamp_seconds", "gauge", "event",
       "event_date of the newest event of this type", "webhooks", "per event type after one event"),
    _m("blacklist_monitor_info", "gauge", "monitor label", "HetrixTools blacklist monitor; always 1",
       "HetrixTools webhooks", "per monitor after its first push", prefix="hetrixtools_"),
    _m("blacklist_monitor_listed", "gauge", "monitor", "1 if the monitor is listed anywhere, else 0",
       "HetrixTools webhooks", "per monitor after its first push", prefix="hetrixtools_"),
    _m("blacklist_monitor_listings", "gauge", "monitor", "Number of RBLs listing the monitor",
       "HetrixTools webhooks", "per monitor after its first push", prefix="hetrixtools_"),
    _m("blacklist_listing_info", "gauge", "monitor rbl", "The monitor is listed on this RBL; always 1",
       "HetrixTools webhooks", "one per (monitor, RBL) only while listed", prefix="hetrixtools_"),
    _m("blacklist_monitor_last_update_timestamp_seconds", "gauge", "monitor",
       "When HetrixTools last pushed this monitor", "HetrixTools webhooks",
       "per monitor after its first push", prefix="hetrixtools_"),
)

SELF_METRICS: tuple[MetricSpec, ...] = (
    _m("up", "gauge", "", "1 if the last poll of every enabled collector succeeded", "scheduler",
       ALWAYS),
    _m("collector_success", "gauge", "collector", "1 if the collector's last poll succeeded",
       "scheduler", "per enabled collector once polled"),
    _m("collector_last_success_timestamp_seconds", "gauge", "collector",
       "When the collector last completed a successful poll", "scheduler",
       "per collector after its first success"),
    _m("collector_interval_seconds", "gauge", "collector",
       "Effective polling interval after budget planning", "planner", "per enabled collector"),
    _m("collector_configured_interval_seconds", "gauge", "collector",
       "Configured (fastest wanted) polling interval", "config", "per enabled collector"),
    _m("collector_duration_seconds", "gauge", "collector", "Duration of the collector's last poll",
       "scheduler", "per collector once polled"),
    _m("collector_pages", "gauge", "collector", "Pages the collector's data spans (learnt)",
       "scheduler", "per enabled collector"),
    _m("collector_planned_requests_per_hour", "gauge", "collector",
       "Requests per hour the plan allots the collector", "planner", "per enabled collector"),
    _m("collector_failures_total", "counter", "collector reason",
       "Failed polls by bounded reason", "scheduler", "per (collector, reason) after one failure"),
    _m("api_requests_total", "counter", "endpoint code", "API requests by route template and HTTP "
       "status (`error` when no response)", "api client", "per (endpoint, code) after a request"),
    _m("api_request_duration_seconds", "histogram", "endpoint", "API request latency",
       "api client", "per endpoint after a request"),
    _m("api_rate_limit_remaining", "gauge", "", "RateLimit-Remaining from the last API response",
       "api client", "once a response carried the header"),
    _m("api_rate_limit_reset_timestamp_seconds", "gauge", "",
       "When the most restrictive rate-limit window resets (from RateLimit-Reset)", "api client",
       "once a response carried the header"),
    _m("api_backoff_until_timestamp_seconds", "gauge", "",
       "No API request before this time (after a 429's Retry-After); 0 when not backing off",
       "ledger", ALWAYS),
    _m("budget_requests_per_hour", "gauge", "", "Configured request budget per rolling hour",
       "config", ALWAYS),
    _m("budget_planned_requests_per_hour", "gauge", "", "Requests per hour the current plan needs",
       "planner", ALWAYS),
    _m("budget_used_requests", "gauge", "", "Requests sent in the last 3600 s", "ledger", ALWAYS),
    _m("parse_warnings_total", "counter", "object field",
       "API fields that were missing or unreadable (the object was kept)", "parser",
       "per (object, field) after one warning"),
    _m("config_last_reload_successful", "gauge", "", "1 if the last config (re)load succeeded",
       "config", ALWAYS),
    _m("config_last_reload_success_timestamp_seconds", "gauge", "",
       "When the config was last loaded successfully", "config", ALWAYS),
    _m("webhook_requests_total", "counter", "source", "Webhook requests received, by source "
       "(generatorlabs, hetrixtools)", "webhook receiver", "per source after one request"),
    _m("webhook_rejected_total", "counter", "source reason", "Webhook requests rejected, by bounded "
       "reason", "webhook receiver", "per (source, reason) after one rejection"),
    _m("exporter_build_info", "gauge", "version python_version", "Build information; always 1",
       "exporter", ALWAYS),
    _m("exporter_task_restarts_total", "counter", "task",
       "Background task restarts after an unexpected error (the traceback is logged)",
       "supervisor", "per task (scheduler, applier, renderer, ...) from the start"),
    _m("webhook_events_set_aside_total", "counter", "source",
       "Stored webhook events that could not be applied and were set aside in the state file",
       "webhook applier", "per source from the start"),
    _m("webhook_objects_forgotten_total", "counter", "kind reason",
       "Webhook-only objects (HetrixTools monitors, agents) removed, by max age or on request",
       "webhook applier", "per (kind, reason) from the start"),
    _m("exposition_skipped_objects", "gauge", "object",
       "Objects left out of the last render of /metrics because they could not be rendered",
       "renderer", "per object kind from the first render"),
    _m("exposition_truncated_label_values", "gauge", "label",
       "Label values in the last render of /metrics cut to the maximum length",
       "renderer", "per label name from the first render"),
)

ALL_METRICS = DATA_METRICS + SELF_METRICS
BY_NAME = {m.name: m for m in ALL_METRICS}


def markdown_table() -> str:
    rows = ["| metric | type | labels | source | present |", "|---|---|---|---|---|"]
    for m in ALL_METRICS:
        labels = ", ".join(f"`{lbl}`" for lbl in m.labels) or "—"
        rows.append(f"| `{m.name}` | {m.type} | {labels} | {m.source} | {m.presence} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
