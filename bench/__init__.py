"""Benchmarks, run by hand, never by the test suite; results go to bench/results/ (gitignored).

One command runs them all and writes the summary the README's figures are copied from:

    python -m bench [--quick] [--only NAME[,NAME]] [--out DIR]
        every benchmark below in a process group of its own, each with a deadline, then
        DIR/summary.json and the markdown table DIR/summary.md (figure, value, goal, how measured)

Each benchmark also runs alone; its module docstring says what it measures and how:

    python -m bench.budget        requests in the busiest hour and freshness over simulated days,
                                  at 20 / 5,000 / 100,000 hosts (fake clock)
    python -m bench.webhooks      webhook intake per second beside bare aiohttp; webhook-to-/metrics
                                  latency on the demo account and at 20,000 hosts + 5,000 monitors,
                                  before and after 10,000 HetrixTools monitors (real processes)
    python -m bench.render_scrape a full render beside prometheus_client.generate_latest on the
                                  same ~128k samples; scrape p50/p99, gzip and uncompressed
    python -m bench.exposition    series, bytes raw and gzipped, scrape time per exposition setting
                                  at 20 / 5,000 / 100,000 hosts
    python -m bench.memory        resident memory of the real exporter at 100,000 hosts + 5,000
                                  monitors (first full inventory, then scrapes), and the top
                                  allocation sites (tracemalloc, in process)
    python -m bench.soak          long runs against a hostile simulator
    python -m bench.fuzz          the property-based tests with many more examples

Shared modules: bench.harness (bounded waits, child processes always stopped), bench.stats
(median and spread of repeated runs) and bench.report (the summary). The soak's own modules are
bench.soak_*.

This package module does no I/O."""
