"""Prometheus exporter for Generator Labs RBL and certificate monitoring. Holds the version; no I/O.

How the code is layered: each unit (a subpackage, or a module at the top of the package) imports
from exporter only the units listed after its arrow, so the imports form no cycle. A unit always
may import itself; `exporter` is this module (the version). tests/test_layers.py reads this table
and fails when an import is not in it or the table has a cycle.

    errors      ->
    clock       ->
    logs        ->
    kit         ->
    exporter    ->
    api         -> exporter errors clock
    config      -> api errors clock
    state       -> api errors clock
    webhooks    -> api config state errors clock
    polling     -> api config state errors clock
    metrics     -> api polling state exporter clock
    web         -> api config metrics state errors exporter clock
    supervisor  -> api clock
    demo        -> api config webhooks errors clock
    app         -> api config state webhooks polling metrics web supervisor demo errors exporter clock
    capture     -> api config state polling demo errors exporter clock
    cli         -> app capture config errors exporter logs kit
    __main__    -> cli

api is the lowest subpackage: the upstream APIs' data and, in api.fields, the generic text
helpers (loggable, shorten) and the SID rule that the others use. state holds what the exporter
knows, webhook state included (state.overlay, state.events); webhooks parse, check and store
what is pushed, and count through a protocol (webhooks.applier.WebhookCounts) that
metrics.selfmetrics implements; metrics read state and polling, never write them. demo (with its
simulator) is imported only by app and capture, for --demo, and the simulator signs webhooks with
webhooks.signature. capture (the `capture` subcommand) records anonymised API answers with
polling's parsers and ledger and state's file; only cli imports it. kit (the alert rules,
dashboards and Alertmanager example, as data files)
imports nothing of the exporter; the CLI prints it.
"""

__version__ = "0.1.0"
