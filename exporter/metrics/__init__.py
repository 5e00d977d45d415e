"""Metrics: the contract (names, types, labels), the renderer, the scrape server side and the
self-metrics. No I/O: they read the state and polling layers and hand bytes to exporter.web."""
