"""A faithful fake of the Generator Labs v4 API, for the demo, the tests and the benchmarks.

Pure core: `account` (the drifting account), `faults` (what can go wrong), `api` (request
handling) and `transport` (in-process, on an injected clock). I/O edges: `app` (aiohttp servers),
`webhooks` (the sender) and `__main__` (the command line).
"""
