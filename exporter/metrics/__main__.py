"""`python -m exporter.metrics`: print the README's metric table, generated from the contract
(the same as `python -m exporter.metrics.contract`). Writes to stdout only."""

from __future__ import annotations

from exporter.metrics.contract import markdown_table


def main() -> None:
    print(markdown_table())


if __name__ == "__main__":
    main()
