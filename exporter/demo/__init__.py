"""The built-in demo (`--demo`) and the simulated Generator Labs API.

Imported only for the demo, the tests and the benchmarks, never by the production daemon.
"""
