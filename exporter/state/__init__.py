"""What the exporter knows: the in-memory store, the webhook overlay and the records they hold
(pure), and its SQLite file (I/O)."""
