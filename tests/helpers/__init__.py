"""Shared test material (not a test module): the hostile values every edge of the exporter must
survive, for the property-based and systematic tests of more than one file."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

# NaN and infinities as numbers and as text, numbers too large for a float or an int() of a
# float, negative counts, booleans, empty and blank text, containers where scalars belong, lone
# surrogates, NUL, quotes and newlines, a 5,000-character string, a date that does not exist,
# and an id of the documented form in the wrong place.
ODD_VALUES: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    10**400,
    "9" * 400,
    -1,
    -5,
    2**80,
    0,
    1.5,
    "",
    " ",
    True,
    False,
    None,
    [],
    {},
    [1, "x"],
    {"id": 1},
    {"host": None},
    "\ud800",
    "TA\ud800",
    "\udfff x",
    "\x00",
    'a\nb"c\\',
    "x" * 5000,
    "2024-13-45",
    "HT" + "a" * 32,
]
ODD = st.sampled_from(ODD_VALUES)
# the odd values half of the time, anything JSON can hold otherwise
VALUE = ODD | st.recursive(
    ODD | st.text(max_size=30) | st.integers() | st.floats(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)

# Every field of a Generator Labs event some event type reads: where odd values go.
FIELDS = [
    "event_sid",
    "event_type",
    "event_date",
    "host",
    "monitor",
    "agent",
    "listed",
    "total",
    "details",
    "expiry_days",
    "current_errors",
    "instances",
    "balance",
    "alert_threshold",
]
