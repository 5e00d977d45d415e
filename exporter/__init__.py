"""Prometheus exporter for Generator Labs RBL and certificate monitoring."""

__version__ = "0.1.0"
