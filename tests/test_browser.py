"""The status page in a real headless Chromium against a real `--demo` exporter: a listed host and
an expiring certificate show, and a webhook's change shows without a reload. Chromium is driven
through chromedriver's W3C WebDriver HTTP API over loopback (urllib, no extra dependency).
I/O: the two processes, loopback HTTP, a state file and a config under tmp_path."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.webhooks.signature import sign
from tests.helpers.processes import DEADLINE, Exporter, free_port, get, need_binary, start_exporter, terminate

SECRET = "whsec_browser_secret_value"
HX_TOKEN = "hx-browser-token-0123456789"
MARKER_RBL = "browser-test.rbl.example"
HX_MONITOR = "198.51.100.77"
HX_DELIST = "https://delist.example/198.51.100.77"


class WebDriver:
    """A W3C WebDriver session on chromedriver: only the commands this test needs."""

    def __init__(self, base: str, chromium: str) -> None:
        self.base = base
        options = {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        }
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=DEADLINE) as response:
            return json.loads(response.read())["value"]

    def go(self, url: str) -> None:
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def run(self, script: str) -> Any:
        return self.call("POST", f"/session/{self.session}/execute/sync", {"script": script, "args": []})

    def quit(self) -> None:
        with contextlib.suppress(OSError):
            self.call("DELETE", f"/session/{self.session}")


@contextlib.contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium session; the session is quit and chromedriver killed on the way out."""
    binary, driver = need_binary("chromium"), need_binary("chromedriver")
    port = free_port()
    process = subprocess.Popen(
        [driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    session: WebDriver | None = None
    try:
        base = f"http://127.0.0.1:{port}"
        until(lambda: get(base + "/status")[0] == 200, "chromedriver to listen")
        session = WebDriver(base, binary)
        yield session
    finally:
        if session is not None:
            session.quit()
        process.kill()
        process.wait(timeout=DEADLINE)


def until(predicate: Any, what: str) -> Any:
    """Poll `predicate` until it returns something true, bounded by DEADLINE; that value."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        with contextlib.suppress(OSError):
            found = predicate()
            if found:
                return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def start_demo(tmp_path: Path) -> Exporter:
    config = tmp_path / "config.yaml"
    webhooks = {"enabled": True, "secrets": [SECRET], "hetrixtools_token": HX_TOKEN}
    config.write_text(yaml.safe_dump({"webhooks": webhooks, "state": {"path": str(tmp_path / "s.sqlite")}}))
    return start_exporter(tmp_path, "--demo", "--config.file", str(config))


def status(exporter: Exporter) -> dict[str, Any]:
    code, text = get(exporter.base + "/api/v1/status")
    assert code == 200, text
    doc: dict[str, Any] = json.loads(text)
    return doc


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=DEADLINE) as response:
        return int(response.status)


def list_on_marker(exporter: Exporter, host_id: str, n: int) -> None:
    """A signed rbl.host.listed event for `host_id`, listed on MARKER_RBL (sent again while the
    page waits: the demo's next listings pass supersedes each one)."""
    body = json.dumps(
        {
            "event_sid": f"TA{n:032x}",
            "event_type": "rbl.host.listed",
            "event_date": datetime.now(UTC).isoformat(),
            "host": {"id": host_id},
            "listed": True,
            "total": 1,
            "details": [{"host": MARKER_RBL}],
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Signature": sign(body, SECRET, int(time.time())),
    }
    assert post(exporter.base + "/webhooks/generatorlabs", body, headers) in (200, 202, 204)


def listed_on_the_hetrix_monitor(exporter: Exporter) -> None:
    chunk = [
        {
            "monitor": HX_MONITOR,
            "label": "browser",
            "blacklisted_now": "1",
            "blacklisted_on": [{"rbl": "zen.spamhaus.org", "delist": HX_DELIST}],
        }
    ]
    url = f"{exporter.base}/webhooks/hetrixtools/{HX_TOKEN}"
    assert post(url, json.dumps(chunk).encode(), {"Content-Type": "application/json"}) in (200, 202, 204)


def table(browser: WebDriver, ident: str) -> str:
    text = browser.run(f"return document.querySelector('#{ident} tbody').textContent;")
    return str(text)


def unlisted_host(exporter: Exporter) -> str:
    code, text = get(exporter.base + "/metrics")
    assert code == 200
    found = re.search(r'generatorlabs_rbl_host_listed\{host_id="(HT[0-9a-f]{32})"\} 0', text)
    assert found, "the demo has no unlisted host"
    return found.group(1)


def test_the_status_page_shows_listings_and_certificates_and_a_webhook_without_reload(tmp_path: Path) -> None:
    """Headless Chromium on the demo: a listed host and an expiring certificate are on the page;
    after a Generator Labs webhook and a HetrixTools chunk, the page shows both (the RBL named by
    the webhook, the delist link as a link) while a marker set on the window survives."""
    exporter = start_demo(tmp_path)
    try:
        doc = until(
            lambda: (
                (d := status(exporter))["listed"]["items"] and d["certificates"]["expiring"]["items"] and d
            ),
            "the demo to list a host and have an expiring certificate",
        )
        with chromium() as browser:
            browser.go(exporter.base + "/")
            listed_host = doc["listed"]["items"][0]["host"]
            cert = doc["certificates"]["expiring"]["items"][0]["name"]
            assert until(lambda: listed_host in table(browser, "listed"), "the listed host on the page")
            assert until(lambda: cert in table(browser, "expiring"), "the expiring certificate on the page")
            browser.run("window.browserTestMarker = 'not reloaded'; return null;")
            host_id, sent = unlisted_host(exporter), [0]
            listed_on_the_hetrix_monitor(exporter)

            def marker_shown() -> bool:
                sent[0] += 1
                list_on_marker(exporter, host_id, sent[0])
                return MARKER_RBL in table(browser, "listed")

            until(marker_shown, "the webhook's listing on the page")
            until(lambda: HX_MONITOR in table(browser, "listed"), "the HetrixTools monitor on the page")
            hrefs = browser.run(
                "return Array.from(document.querySelectorAll('#listed a.delist')).map(a => a.href);"
            )
            assert HX_DELIST in hrefs
            assert browser.run("return document.getElementById('refresh-error').textContent;") == ""
            assert "rbl_listings" in table(browser, "collectors")  # the whole refresh ran
            assert browser.run("return window.browserTestMarker;") == "not reloaded"
    finally:
        terminate(exporter)
