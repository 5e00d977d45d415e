"""Metrics: the contract (names, types, labels), the renderer, the scrape server side and the self-metrics."""
