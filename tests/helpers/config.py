"""Shared test material for the configuration, web-config and command-line tests (not a test
module): a throw-away PKI made with openssl, bcrypt hashes, and writing a web config file.
Writes files under the folders it is given; runs openssl."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import bcrypt
import yaml

CERT_DAYS = "2"  # the certificates outlive any test run, and nothing else
TEST_ROUNDS = 4  # bcrypt's cheapest cost: tests check the outcome, not the cost


def make_pki(openssl: str, folder: Path) -> Path:
    """A CA (ca.crt), a server certificate for 127.0.0.1 and localhost (server.crt/.key) and a
    client certificate for prometheus.example and 2001:db8::1 (client.crt/.key), all in `folder`."""

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    new_key = ("-newkey", "rsa:2048", "-nodes")
    run(
        "req",
        "-x509",
        *new_key,
        "-days",
        CERT_DAYS,
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (folder / "client.ext").write_text("subjectAltName=DNS:prometheus.example,IP:2001:db8::1\n")
    for name in ("server", "client"):
        run("req", *new_key, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            CERT_DAYS,
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
        )
    return folder


def hashed(password: str) -> str:
    """A bcrypt hash of `password`, as basic_auth_users holds it."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=TEST_ROUNDS)).decode()


def write_web_config(path: Path, web_config: dict[str, Any]) -> str:
    """Write `web_config` as YAML to `path`; the path as the exporter takes it."""
    path.write_text(yaml.safe_dump(web_config))
    return str(path)
