"""The public surface that several tests pin: every command-line flag, and the subcommands'."""

FLAGS = [
    "--config.file",
    "--config.check",
    "--web.listen-address",
    "--web.telemetry-path",
    "--web.config.file",
    "--webhook.listen-address",
    "--log.level",
    "--log.format",
    "--demo",
    "--version",
    "--help",
]
RUN_FLAGS = [f for f in FLAGS if f != "--version"]  # what the healthcheck reads too
SUBCOMMAND_FLAGS = {
    "print": ["--help"],
    "print rules": ["--threshold", "--runbook-base", "--help"],
    "print dashboards": ["--output-dir", "--help"],
    "print config": ["--help"],
    "healthcheck": [*RUN_FLAGS, "--args-file", "--timeout"],
    "capture": ["--config.file", "--output", "--demo", "--help"],
}
