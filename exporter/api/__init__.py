"""The Generator Labs API: one transport that does I/O, and pure readers of what it returns."""
