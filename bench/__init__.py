"""Benchmarks, run by hand, never by the test suite; each writes its results to bench/results/
(gitignored) and prints them. Each module's docstring says what it measures and how to run it:

    python -m bench.budget        requests per hour and freshness over simulated days (fake clock)
    python -m bench.webhooks      webhook throughput and webhook-to-/metrics latency (real processes)
    python -m bench.render_scrape rendering and scraping /metrics
    python -m bench.soak          long runs against a hostile simulator
    python -m bench.fuzz          the property-based tests with many more examples

This package module does no I/O."""
