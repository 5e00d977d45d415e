"""The built-in demo (`--demo`) and the simulated Generator Labs API.

Imported only for the demo, the tests and the benchmarks, never by the production daemon.
I/O: the simulator listens on a loopback port and the demo posts webhooks to the exporter.
"""
