"""The public surface that several tests pin: every command-line flag."""

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
