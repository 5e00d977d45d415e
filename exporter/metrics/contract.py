"""Pure data: the metric contract. Every name, type, label set, help text, source and presence rule.

This module is the only place where a metric is spelled. It is the public API: the renderer
(exporter.metrics.render) and the self-metrics (exporter.metrics.selfmetrics) take each family's
name, labels and help from the constants below, tests/test_contract.py pins them against a real
scrape, and the README's metric table is generated from it (`python -m exporter.metrics`, the
one entry point that prints it). No I/O.
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

    @property
    def pieces(self) -> tuple[str, ...]:
        """The fixed text of a sample line around its label values, for a renderer to compute
        once: `name{first="`, then `",next="` for each further label, then `"} `. A line is
        pieces[0] + first label value + pieces[1] + ... + pieces[-1] + sample value + newline.
        Without labels, the one piece `name ` (the sample value follows)."""
        if not self.labels:
            return (f"{self.name} ",)
        first, *rest = self.labels
        return (f'{self.name}{{{first}="', *(f'",{label}="' for label in rest), '"} ')


def _m(
    name: str,
    mtype: str,
    labels: str,
    help_: str,
    source: str,
    presence: str,
    prefix: str = "generatorlabs_",
) -> MetricSpec:
    return MetricSpec(f"{prefix}{name}", mtype, tuple(labels.split()), help_, source, presence)


ALWAYS = "always"
PER_HOST = "one per host while the host data is fresh"
PER_MONITOR = "one per monitor while the monitor data is fresh"

# -- the data series (exporter.metrics.render), in exposition order -------------------------------

RBL_HOST_INFO = _m(
    "rbl_host_info",
    "gauge",
    "host_id host name host_kind profile_id tags contact_group",
    "RBL-monitored host; always 1, carries the host's names, its tags and the contact groups it"
    ' notifies (each `,a,b,`: sorted, comma-joined, "" for none)',
    "rbl_hosts, rbl_listings",
    PER_HOST,
)
RBL_HOST_LISTED = _m(
    "rbl_host_listed",
    "gauge",
    "host_id",
    "1 if the host is listed on at least one RBL, else 0",
    "rbl_listings, rbl_hosts",
    PER_HOST,
)
RBL_HOST_LISTINGS = _m(
    "rbl_host_listings",
    "gauge",
    "host_id",
    "Number of RBLs currently listing the host",
    "rbl_listings, rbl_hosts",
    PER_HOST,
)
RBL_LISTING_INFO = _m(
    "rbl_listing_info",
    "gauge",
    "host_id rbl",
    "The host is listed on this RBL; always 1",
    "rbl_listings, rbl_hosts",
    "one per (host, RBL) only while listed",
)
RBL_HOST_PAUSED = _m(
    "rbl_host_paused",
    "gauge",
    "host_id",
    "1 if checks of the host are paused, else 0",
    "rbl_hosts",
    PER_HOST,
)
RBL_HOST_LAST_CHECKED_TIMESTAMP_SECONDS = _m(
    "rbl_host_last_checked_timestamp_seconds",
    "gauge",
    "host_id",
    "When Generator Labs last checked the host",
    "rbl_hosts, rbl_listings",
    "per host once the API reports a check time",
)
RBL_HOST_FIRST_LISTED_TIMESTAMP_SECONDS = _m(
    "rbl_host_first_listed_timestamp_seconds",
    "gauge",
    "host_id",
    "When the host's current listing began",
    "rbl_listings, rbl_hosts",
    "per host only while listed (and the API gives the date)",
)
RBL_HOSTS = _m(
    "rbl_hosts",
    "gauge",
    "",
    "Number of RBL-monitored hosts on the account",
    "rbl_hosts",
    "while the host data is fresh",
)
RBL_HOSTS_LISTED = _m(
    "rbl_hosts_listed",
    "gauge",
    "",
    "Number of hosts listed on at least one RBL",
    "rbl_listings, rbl_hosts",
    "while listing or host data is fresh",
)
CERT_MONITOR_INFO = _m(
    "cert_monitor_info",
    "gauge",
    "monitor_id name hostname protocol port profile_id tags contact_group",
    "Certificate monitor; always 1, carries its names, its tags and the contact groups it notifies"
    ' (each `,a,b,`: sorted, comma-joined, "" for none)',
    "cert_monitors",
    PER_MONITOR,
)
CERT_MONITOR_PAUSED = _m(
    "cert_monitor_paused",
    "gauge",
    "monitor_id",
    "1 if the monitor is paused, else 0",
    "cert_monitors",
    PER_MONITOR,
)
CERT_EXPIRY_DAYS = _m(
    "cert_expiry_days",
    "gauge",
    "monitor_id",
    "Days until the certificate expires, negative once expired",
    "cert_monitors",
    "per monitor when the API gives an expiry date or days",
)
CERT_NOT_AFTER_TIMESTAMP_SECONDS = _m(
    "cert_not_after_timestamp_seconds",
    "gauge",
    "monitor_id",
    "When the certificate expires (notAfter)",
    "cert_monitors",
    "per monitor when the API gives an expiry date",
)
CERT_MONITORS_WITHOUT_EXPIRY = _m(
    "cert_monitors_without_expiry",
    "gauge",
    "",
    "Active (unpaused) certificate monitors whose expiry could not be read from the API: their"
    " expiry alerts cannot fire",
    "cert_monitors",
    "while the monitor data is fresh",
)
CERT_ACTIVE_ERRORS = _m(
    "cert_active_errors",
    "gauge",
    "monitor_id",
    "Number of active certificate errors",
    "cert_errors",
    "per monitor while the error data is fresh",
)
CERT_ERROR_INFO = _m(
    "cert_error_info",
    "gauge",
    "monitor_id reason",
    "An active certificate error of this reason; always 1",
    "cert_errors",
    "one per (monitor, reason) only while active",
)
CERT_ERRORS = _m(
    "cert_errors",
    "gauge",
    "",
    "Number of active certificate errors on the account",
    "cert_errors",
    "while the error data is fresh",
)
RBL_PROFILE_INFO = _m(
    "rbl_profile_info",
    "gauge",
    "profile_id name",
    "RBL monitoring profile; always 1",
    "rbl_profiles",
    "one per profile while fresh",
)
RBL_PROFILE_CHECK_INTERVAL_SECONDS = _m(
    "rbl_profile_check_interval_seconds",
    "gauge",
    "profile_id",
    "How often Generator Labs checks the hosts of this RBL monitoring profile (its `frequency`)",
    "rbl_profiles",
    "per profile whose frequency the API gives, while fresh",
)
RBL_SOURCE_INFO = _m(
    "rbl_source_info",
    "gauge",
    "source_id rbl host_kind",
    "RBL data source; always 1",
    "rbl_sources",
    "one per source while fresh",
)
RBL_SOURCE_PAUSED = _m(
    "rbl_source_paused",
    "gauge",
    "source_id",
    "1 if the RBL source is paused, else 0",
    "rbl_sources",
    "one per source while fresh",
)
CONTACT_INFO = _m(
    "contact_info",
    "gauge",
    "contact_id contact_kind contact_group",
    "Alert contact (never its address); always 1, carries the contact groups it is in (`,a,b,`)",
    "contacts",
    "one per contact while fresh",
)
CONTACT_PAUSED = _m(
    "contact_paused",
    "gauge",
    "contact_id",
    "1 if the contact is paused, else 0",
    "contacts",
    "one per contact while fresh",
)
CONTACT_CONFIRMED = _m(
    "contact_confirmed",
    "gauge",
    "contact_id",
    "1 if the contact confirmed its address, 0 while it is pending (alerts do not reach it)",
    "contacts",
    "per contact whose status the API gives, while fresh",
)
CONTACT_GROUP_INFO = _m(
    "contact_group_info",
    "gauge",
    "group_id name",
    "Contact group; always 1",
    "contact_groups",
    "one per group while fresh",
)
CONTACT_GROUP_DEFAULT = _m(
    "contact_group_default",
    "gauge",
    "group_id",
    "1 for the account's default contact group (given to hosts and contacts created without one), else 0",
    "contact_groups",
    "per group that says, while fresh",
)
CONTACT_GROUP_REACHABLE_CONTACTS = _m(
    "contact_group_reachable_contacts",
    "gauge",
    "group_id",
    "Contacts of the group that are confirmed and not paused: those the group's alerts reach",
    "contacts, contact_groups",
    "per group while contacts and groups are fresh; none for a group with no such contact but one"
    " of unknown status",
)
CONTACT_GROUP_OBJECTS = _m(
    "contact_group_objects",
    "gauge",
    "group_id",
    "RBL hosts and certificate monitors that notify the group",
    "rbl_hosts, cert_monitors, contact_groups",
    "per group while groups and hosts or monitors are fresh",
)
CERT_PROFILE_INFO = _m(
    "cert_profile_info",
    "gauge",
    "profile_id name",
    "Certificate monitoring profile; always 1",
    "cert_profiles",
    "one per profile while fresh",
)
CERT_PROFILE_EXPIRY_WARNING_DAYS = _m(
    "cert_profile_expiry_warning_days",
    "gauge",
    "profile_id",
    "The profile's largest expiration threshold: days before expiry of its first alert",
    "cert_profiles",
    "per profile with thresholds, while fresh",
)
CERT_PROFILE_ALERT_ENABLED = _m(
    "cert_profile_alert_enabled",
    "gauge",
    "profile_id alert",
    "1 if the profile sends alerts of this kind (expiration, name_mismatch, ca_failure,"
    " connection_failure, caa_failure, misconfigurations, changes), else 0",
    "cert_profiles",
    "per (profile, alert) the API states, while fresh",
)
CERT_CHANGES_TOTAL = _m(
    "cert_changes_total",
    "counter",
    "monitor_id",
    "Certificate replacements reported by cert.changed webhooks",
    "webhooks",
    "per known monitor after its first cert.changed",
)
CERT_LAST_CHANGE_TIMESTAMP_SECONDS = _m(
    "cert_last_change_timestamp_seconds",
    "gauge",
    "monitor_id",
    "When the certificate was last replaced (cert.changed)",
    "webhooks",
    "per known monitor after its first cert.changed",
)
AGENT_INFO = _m(
    "agent_info",
    "gauge",
    "agent_id name",
    "Monitoring agent seen in agent.* webhooks; always 1",
    "webhooks",
    "per agent after its first agent.* event",
)
AGENT_TIMED_OUT = _m(
    "agent_timed_out",
    "gauge",
    "agent_id",
    "1 while the agent is timed out (agent.timeout), else 0",
    "webhooks",
    "per agent after its first agent.* event",
)
AGENT_TIMED_OUT_INSTANCES = _m(
    "agent_timed_out_instances",
    "gauge",
    "agent_id",
    "Agent instances currently timed out",
    "webhooks",
    "per agent after its first agent.* event",
)
BILLING_BALANCE_USD = _m(
    "billing_balance_usd",
    "gauge",
    "",
    "Account balance from the last billing.balance.alert",
    "webhooks",
    "after a billing.balance.alert",
)
BILLING_BALANCE_THRESHOLD_USD = _m(
    "billing_balance_threshold_usd",
    "gauge",
    "",
    "Low-balance alert threshold from the last billing.balance.alert",
    "webhooks",
    "after a billing.balance.alert",
)
WEBHOOK_EVENTS_TOTAL = _m(
    "webhook_events_total",
    "counter",
    "event",
    "Verified Generator Labs webhook events applied, by event type (unknown types: other)",
    "webhooks",
    "per event type after one event",
)
WEBHOOK_LAST_EVENT_TIMESTAMP_SECONDS = _m(
    "webhook_last_event_timestamp_seconds",
    "gauge",
    "event",
    "event_date of the newest event of this type",
    "webhooks",
    "per event type after one event",
)
BLACKLIST_MONITOR_INFO = _m(
    "blacklist_monitor_info",
    "gauge",
    "monitor label",
    "HetrixTools blacklist monitor; always 1",
    "HetrixTools webhooks",
    "per monitor after its first push",
    prefix="hetrixtools_",
)
BLACKLIST_MONITOR_LISTED = _m(
    "blacklist_monitor_listed",
    "gauge",
    "monitor",
    "1 if the monitor is listed anywhere, else 0",
    "HetrixTools webhooks",
    "per monitor after its first push",
    prefix="hetrixtools_",
)
BLACKLIST_MONITOR_LISTINGS = _m(
    "blacklist_monitor_listings",
    "gauge",
    "monitor",
    "Number of RBLs listing the monitor",
    "HetrixTools webhooks",
    "per monitor after its first push",
    prefix="hetrixtools_",
)
BLACKLIST_LISTING_INFO = _m(
    "blacklist_listing_info",
    "gauge",
    "monitor rbl",
    "The monitor is listed on this RBL; always 1",
    "HetrixTools webhooks",
    "one per (monitor, RBL) only while listed",
    prefix="hetrixtools_",
)
BLACKLIST_MONITOR_LAST_UPDATE_TIMESTAMP_SECONDS = _m(
    "blacklist_monitor_last_update_timestamp_seconds",
    "gauge",
    "monitor",
    "When HetrixTools last pushed this monitor",
    "HetrixTools webhooks",
    "per monitor after its first push",
    prefix="hetrixtools_",
)

# -- the exporter's own metrics (exporter.metrics.selfmetrics) ------------------------------------

UP = _m(
    "up",
    "gauge",
    "",
    "1 if the last poll of every enabled collector succeeded",
    "scheduler",
    ALWAYS,
)
COLLECTOR_SUCCESS = _m(
    "collector_success",
    "gauge",
    "collector",
    "1 if the collector's last poll succeeded",
    "scheduler",
    "per enabled collector once polled",
)
COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS = _m(
    "collector_last_success_timestamp_seconds",
    "gauge",
    "collector",
    "When the collector last completed a successful poll",
    "scheduler",
    "per collector after its first success",
)
COLLECTOR_INTERVAL_SECONDS = _m(
    "collector_interval_seconds",
    "gauge",
    "collector",
    "Effective polling interval after budget planning",
    "planner",
    "per enabled collector",
)
COLLECTOR_CONFIGURED_INTERVAL_SECONDS = _m(
    "collector_configured_interval_seconds",
    "gauge",
    "collector",
    "Configured (fastest wanted) polling interval",
    "config",
    "per enabled collector",
)
COLLECTOR_DURATION_SECONDS = _m(
    "collector_duration_seconds",
    "gauge",
    "collector",
    "Duration of the collector's last poll",
    "scheduler",
    "per collector once polled",
)
COLLECTOR_PAGES = _m(
    "collector_pages",
    "gauge",
    "collector",
    "Pages the collector's data spans (learnt)",
    "scheduler",
    "per enabled collector",
)
COLLECTOR_PLANNED_REQUESTS_PER_HOUR = _m(
    "collector_planned_requests_per_hour",
    "gauge",
    "collector",
    "Requests per hour the plan allots the collector",
    "planner",
    "per enabled collector",
)
COLLECTOR_FAILURES_TOTAL = _m(
    "collector_failures_total",
    "counter",
    "collector reason",
    "Failed polls by bounded reason",
    "scheduler",
    "per (collector, reason) after one failure",
)
API_REQUESTS_TOTAL = _m(
    "api_requests_total",
    "counter",
    "endpoint code",
    "API requests by route template and HTTP status (`error` when no response)",
    "api client",
    "per (endpoint, code) from the start for the polled routes and codes 200, 429 and error",
)
API_REQUEST_DURATION_SECONDS = _m(
    "api_request_duration_seconds",
    "histogram",
    "endpoint",
    "API request latency",
    "api client",
    "per endpoint after a request",
)
API_RATE_LIMIT_REMAINING = _m(
    "api_rate_limit_remaining",
    "gauge",
    "window",
    "RateLimit-Remaining of the last API response that described this window (seconds, inferred"
    " from RateLimit-Limit; `unknown` when no policy fits)",
    "api client",
    "per window once a response described it",
)
API_RATE_LIMIT_RESET_TIMESTAMP_SECONDS = _m(
    "api_rate_limit_reset_timestamp_seconds",
    "gauge",
    "window",
    "When this rate-limit window resets (from RateLimit-Reset of the last response describing it)",
    "api client",
    "per window once a response described it",
)
API_BACKOFF_UNTIL_TIMESTAMP_SECONDS = _m(
    "api_backoff_until_timestamp_seconds",
    "gauge",
    "",
    "No API request before this time (after a 429's Retry-After); 0 when not backing off",
    "ledger",
    ALWAYS,
)
BUDGET_REQUESTS_PER_HOUR = _m(
    "budget_requests_per_hour",
    "gauge",
    "",
    "Configured request budget per rolling hour",
    "config",
    ALWAYS,
)
BUDGET_PLANNED_REQUESTS_PER_HOUR = _m(
    "budget_planned_requests_per_hour",
    "gauge",
    "",
    "Requests per hour the current plan needs",
    "planner",
    ALWAYS,
)
BUDGET_USED_REQUESTS = _m(
    "budget_used_requests",
    "gauge",
    "",
    "Requests sent in the last 3600 s",
    "ledger",
    ALWAYS,
)
PARSE_WARNINGS_TOTAL = _m(
    "parse_warnings_total",
    "counter",
    "object field",
    "API fields that were missing or unreadable (the object was kept)",
    "parser",
    "per (object, field) of the polled objects from the start; of webhook fields after one",
)
CONFIG_LAST_RELOAD_SUCCESSFUL = _m(
    "config_last_reload_successful",
    "gauge",
    "",
    "1 if the last config (re)load succeeded",
    "config",
    ALWAYS,
)
CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS = _m(
    "config_last_reload_success_timestamp_seconds",
    "gauge",
    "",
    "When the config was last loaded successfully",
    "config",
    ALWAYS,
)
WEBHOOK_REQUESTS_TOTAL = _m(
    "webhook_requests_total",
    "counter",
    "source",
    "Webhook requests received, by source (generatorlabs, hetrixtools)",
    "webhook receiver",
    "per source after one request",
)
WEBHOOK_REJECTED_TOTAL = _m(
    "webhook_rejected_total",
    "counter",
    "source reason",
    "Webhook requests rejected, by bounded reason",
    "webhook receiver",
    "per (source, reason) from the start, once a webhook receiver is configured",
)
EXPORTER_BUILD_INFO = _m(
    "exporter_build_info",
    "gauge",
    "version python_version",
    "Build information; always 1",
    "exporter",
    ALWAYS,
)
EXPORTER_TASK_RESTARTS_TOTAL = _m(
    "exporter_task_restarts_total",
    "counter",
    "task",
    "Background task restarts after an unexpected error (the traceback is logged)",
    "supervisor",
    "per task (scheduler, applier, renderer, ...) from the start",
)
WEBHOOK_EVENTS_SET_ASIDE_TOTAL = _m(
    "webhook_events_set_aside_total",
    "counter",
    "source",
    "Stored webhook events that could not be applied and were set aside in the state file",
    "webhook applier",
    "per source from the start",
)
WEBHOOK_OBJECTS_FORGOTTEN_TOTAL = _m(
    "webhook_objects_forgotten_total",
    "counter",
    "kind reason",
    "Webhook-only objects (HetrixTools monitors, agents) removed, by max age or on request",
    "webhook applier",
    "per (kind, reason) from the start",
)
EXPOSITION_SKIPPED_OBJECTS = _m(
    "exposition_skipped_objects",
    "gauge",
    "object",
    "Objects left out of the last render of /metrics because they could not be rendered",
    "renderer",
    "per object kind from the first render",
)
EXPOSITION_TRUNCATED_LABEL_VALUES = _m(
    "exposition_truncated_label_values",
    "gauge",
    "label",
    "Label values in the last render of /metrics cut to the maximum length",
    "renderer",
    "per label name from the first render",
)

DATA_METRICS: tuple[MetricSpec, ...] = (
    RBL_HOST_INFO,
    RBL_HOST_LISTED,
    RBL_HOST_LISTINGS,
    RBL_LISTING_INFO,
    RBL_HOST_PAUSED,
    RBL_HOST_LAST_CHECKED_TIMESTAMP_SECONDS,
    RBL_HOST_FIRST_LISTED_TIMESTAMP_SECONDS,
    RBL_HOSTS,
    RBL_HOSTS_LISTED,
    CERT_MONITOR_INFO,
    CERT_MONITOR_PAUSED,
    CERT_EXPIRY_DAYS,
    CERT_NOT_AFTER_TIMESTAMP_SECONDS,
    CERT_MONITORS_WITHOUT_EXPIRY,
    CERT_ACTIVE_ERRORS,
    CERT_ERROR_INFO,
    CERT_ERRORS,
    RBL_PROFILE_INFO,
    RBL_PROFILE_CHECK_INTERVAL_SECONDS,
    RBL_SOURCE_INFO,
    RBL_SOURCE_PAUSED,
    CONTACT_INFO,
    CONTACT_PAUSED,
    CONTACT_CONFIRMED,
    CONTACT_GROUP_INFO,
    CONTACT_GROUP_DEFAULT,
    CONTACT_GROUP_REACHABLE_CONTACTS,
    CONTACT_GROUP_OBJECTS,
    CERT_PROFILE_INFO,
    CERT_PROFILE_EXPIRY_WARNING_DAYS,
    CERT_PROFILE_ALERT_ENABLED,
    CERT_CHANGES_TOTAL,
    CERT_LAST_CHANGE_TIMESTAMP_SECONDS,
    AGENT_INFO,
    AGENT_TIMED_OUT,
    AGENT_TIMED_OUT_INSTANCES,
    BILLING_BALANCE_USD,
    BILLING_BALANCE_THRESHOLD_USD,
    WEBHOOK_EVENTS_TOTAL,
    WEBHOOK_LAST_EVENT_TIMESTAMP_SECONDS,
    BLACKLIST_MONITOR_INFO,
    BLACKLIST_MONITOR_LISTED,
    BLACKLIST_MONITOR_LISTINGS,
    BLACKLIST_LISTING_INFO,
    BLACKLIST_MONITOR_LAST_UPDATE_TIMESTAMP_SECONDS,
)
SELF_METRICS: tuple[MetricSpec, ...] = (
    UP,
    COLLECTOR_SUCCESS,
    COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS,
    COLLECTOR_INTERVAL_SECONDS,
    COLLECTOR_CONFIGURED_INTERVAL_SECONDS,
    COLLECTOR_DURATION_SECONDS,
    COLLECTOR_PAGES,
    COLLECTOR_PLANNED_REQUESTS_PER_HOUR,
    COLLECTOR_FAILURES_TOTAL,
    API_REQUESTS_TOTAL,
    API_REQUEST_DURATION_SECONDS,
    API_RATE_LIMIT_REMAINING,
    API_RATE_LIMIT_RESET_TIMESTAMP_SECONDS,
    API_BACKOFF_UNTIL_TIMESTAMP_SECONDS,
    BUDGET_REQUESTS_PER_HOUR,
    BUDGET_PLANNED_REQUESTS_PER_HOUR,
    BUDGET_USED_REQUESTS,
    PARSE_WARNINGS_TOTAL,
    CONFIG_LAST_RELOAD_SUCCESSFUL,
    CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS,
    WEBHOOK_REQUESTS_TOTAL,
    WEBHOOK_REJECTED_TOTAL,
    EXPORTER_BUILD_INFO,
    EXPORTER_TASK_RESTARTS_TOTAL,
    WEBHOOK_EVENTS_SET_ASIDE_TOTAL,
    WEBHOOK_OBJECTS_FORGOTTEN_TOTAL,
    EXPOSITION_SKIPPED_OBJECTS,
    EXPOSITION_TRUNCATED_LABEL_VALUES,
)
ALL_METRICS = DATA_METRICS + SELF_METRICS


def markdown_table() -> str:
    """The README's metric table, one row per metric in contract order."""
    rows = ["| metric | type | labels | source | present |", "|---|---|---|---|---|"]
    for m in ALL_METRICS:
        labels = ", ".join(f"`{lbl}`" for lbl in m.labels) or "—"
        rows.append(f"| `{m.name}` | {m.type} | {labels} | {m.source} | {m.presence} |")
    return "\n".join(rows)
