"""A faithful fake of the Generator Labs v4 API, for the demo, the tests and the benchmarks."""
