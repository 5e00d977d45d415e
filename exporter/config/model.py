"""The configuration model: one frozen dataclass per section of the YAML file, and the limits and
defaults that parsing checks against, each named once here. Pure data, no I/O. Parsing is
exporter.config.parse; reading files and the environment, exporter.config.load."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from exporter.api.endpoints import ENDPOINTS
from exporter.api.fields import SID
from exporter.clock import DAY, MIB, MINUTE

DEFAULT_BASE_URL = "https://api.generatorlabs.com/4.0"
DEFAULT_LISTEN_ADDRESS = ":9816"
DEFAULT_TELEMETRY_PATH = "/metrics"
# Every path the exporter serves besides the telemetry path, in aiohttp's route syntax:
# exporter.web.routes and exporter.webhooks.receivers register exactly these, and the telemetry
# path may take none of them (registered first, it would silently take the route over).
LANDING_PATH = "/"
STATUS_PATH = "/api/v1/status"
HEALTHY_PATH = "/-/healthy"
READY_PATH = "/-/ready"
RELOAD_PATH = "/-/reload"
GENERATORLABS_WEBHOOK_PATH = "/webhooks/generatorlabs"
HETRIXTOOLS_WEBHOOK_PATH = "/webhooks/hetrixtools/{token}"
# a monitor may be an IP range ("192.0.2.0/24"): the rest of the path, slashes included
FORGET_MONITOR_PATH = "/-/webhooks/hetrixtools/monitors/{monitor:.+}"
FORGET_AGENT_PATH = "/-/webhooks/agents/{agent_id}"
ROUTES = {
    LANDING_PATH: "the status page",
    STATUS_PATH: "the status page's JSON twin",
    HEALTHY_PATH: "the liveness check",
    READY_PATH: "the readiness check",
    RELOAD_PATH: "the reload endpoint",
    GENERATORLABS_WEBHOOK_PATH: "the Generator Labs webhook receiver",
    HETRIXTOOLS_WEBHOOK_PATH: "the HetrixTools webhook receiver",
    FORGET_MONITOR_PATH: "the endpoint that forgets a HetrixTools monitor",
    FORGET_AGENT_PATH: "the endpoint that forgets an agent",
}
# API reference, "Rate Limiting": "Hourly limit: 1,000 requests per hour per API application"
API_HOURLY_LIMIT = 1000
MAX_PAGE_SIZE = 1000  # entries; the API documents no maximum, a larger page is a typo
DEFAULT_PAGE_SIZE = 100  # entries per page
DEFAULT_REFRESH_DEBOUNCE = MINUTE  # seconds during which a second ask for one object is declined
# Seconds a webhook signature's timestamp may be off (API reference, "Webhook Verification": the
# five official SDKs verify with a 300 s tolerance).
DEFAULT_SIGNATURE_TOLERANCE = 5 * MINUTE
DEFAULT_SERIES_MAX_AGE = 30 * DAY  # see README "Webhook-only series"
MAX_REQUESTS_PER_HOUR = 1_000_000  # even with allow_over_limit: a larger budget is a typo
MAX_REQUESTS_PER_SECOND = 50.0  # budget.requests_per_second at most
MAX_RESERVE = 0.9  # share of the hourly budget kept back at most: some must be left to poll with
MAX_DURATION = 365 * DAY  # a longer interval, timeout or age is a typo, not a wish
MIN_WEBHOOK_BODY = 1024  # bytes, the smallest webhooks.max_body_bytes
MAX_WEBHOOK_BODY = 64 * MIB  # bytes, the largest webhooks.max_body_bytes
# The HetrixTools token is the only thing guarding its webhook URL: shorter ones can be guessed.
MIN_HETRIXTOOLS_TOKEN = 16  # characters
# Account SIDs have the form of every SID in the API reference's samples: two upper case letters
# and 32 hex digits (e.g. "TA9dbf5e2f7e924418a6d6b483a584adcf"), AC... for an account.
ACCOUNT_SID = SID  # an account SID: "AC" and 32 hex digits in the samples
MAX_PORT = 65535
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")  # warn: the toolkit's spelling
LOG_FORMATS = ("logfmt", "json", "console")
IF_UNREADABLE = ("fail", "move_aside")  # what to do with a state file that cannot be read
# exposition.per_host: every host's series (the default), or, for large accounts, per-host series
# only for hosts listed or paused (and per-monitor HetrixTools series only for monitors listed);
# the same values as exporter.metrics.render.PER_HOST, which the metrics layer reads
PER_HOST_CHOICES = ("all", "listed")


@dataclass(frozen=True, slots=True)
class ApiConfig:
    base_url: str = DEFAULT_BASE_URL
    page_size: int = DEFAULT_PAGE_SIZE
    timeout: float = 30.0
    account_sid: str | None = None
    auth_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    requests_per_hour: int = 900
    allow_over_limit: bool = False
    requests_per_second: float = 5.0
    reserve: float = 0.1


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    enabled: bool
    interval: float
    max_age: float | None = None  # None: three effective intervals, at least 10 minutes


@dataclass(frozen=True, slots=True)
class ListenConfig:
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    telemetry_path: str = DEFAULT_TELEMETRY_PATH


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    enabled: bool = False
    secrets: tuple[str, ...] = field(default=(), repr=False)
    tolerance: float = DEFAULT_SIGNATURE_TOLERANCE
    max_body_bytes: int = MIB
    refresh_debounce: float = DEFAULT_REFRESH_DEBOUNCE
    hetrixtools_token: str | None = field(default=None, repr=False)
    hetrixtools_allowed_cidrs: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    # HetrixTools monitors and agents exist only through webhooks; forget one not heard of since
    series_max_age: float = DEFAULT_SERIES_MAX_AGE


@dataclass(frozen=True, slots=True)
class StateConfig:
    path: str | None = None  # None: the default location (see default_state_path)
    if_unreadable: str = "fail"  # or "move_aside": rename a broken file and start fresh


@dataclass(frozen=True, slots=True)
class ExpositionConfig:
    per_host: str = "all"  # one of PER_HOST_CHOICES


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"
    format: str = "logfmt"


def default_collectors() -> dict[str, CollectorConfig]:
    return {n: CollectorConfig(e.default_enabled, e.default_interval) for n, e in ENDPOINTS.items()}


@dataclass(frozen=True, slots=True)
class Config:
    api: ApiConfig = field(default_factory=ApiConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    collectors: Mapping[str, CollectorConfig] = field(default_factory=default_collectors)
    web: ListenConfig = field(default_factory=ListenConfig)
    log: LogConfig = field(default_factory=LogConfig)
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    state: StateConfig = field(default_factory=StateConfig)
    exposition: ExpositionConfig = field(default_factory=ExpositionConfig)

    def with_credentials(self, sid: str, token: str) -> Config:
        return replace(self, api=replace(self.api, account_sid=sid, auth_token=token))
