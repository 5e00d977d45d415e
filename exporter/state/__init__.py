"""What the exporter knows: the in-memory store (pure) and its SQLite file (I/O)."""
