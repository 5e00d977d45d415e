"""Webhooks: signature checks, payload parsing and the overlay (pure); the receivers and the applier (I/O)."""
