"""Webhooks: signature checks and payload parsing (pure); the receivers (HTTP) and the applier
(the state file) do I/O. What they fold into is exporter.state.overlay."""
