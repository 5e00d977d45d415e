"""Polling inside the hourly budget: the request ledger and the plan (pure) and the scheduler loop."""
