"""`python -m exporter.metrics`: print the README's metric table, generated from the contract
(exporter.metrics.contract.markdown_table). I/O: writes the table to stdout, nothing else."""

from __future__ import annotations

from exporter.metrics.contract import markdown_table


def main() -> None:
    print(markdown_table())


if __name__ == "__main__":
    main()
