"""Shared fixtures: the fake clock and a factory for a scheduler wired to the simulator (no I/O
besides the aioresponses compatibility shim at the end)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers.rig import FakeClock, Rig, make_rig_factory

# Property-based tests: a modest number of examples in the suite; `python -m bench.fuzz` runs the
# same tests with FUZZ_EXAMPLES set much higher. Tests reuse one server across examples on purpose
# (state must survive hostile input), hence the function-scoped fixture health check is off.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
settings.register_profile(
    "exporter",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
settings.load_profile("exporter")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_rig(clock: FakeClock) -> Callable[..., Rig]:
    return make_rig_factory(clock)


# aioresponses 0.7.9 builds ClientResponse without the `stream_writer` argument that aiohttp 3.14
# requires (pnuckowski/aioresponses#289, fix pending in #288). Supply a harmless one until a fixed
# release is out; remove this block then.
def _patch_aioresponses() -> None:
    import inspect
    from unittest.mock import Mock

    import aioresponses.core
    from aiohttp import ClientResponse

    if "stream_writer" not in inspect.signature(ClientResponse.__init__).parameters:
        return

    class CompatResponse(ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", Mock(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = CompatResponse  # type: ignore[attr-defined]


_patch_aioresponses()
