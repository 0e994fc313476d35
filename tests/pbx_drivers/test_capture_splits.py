"""The property for the captures that predate the per-driver split tests (Mitel MiVB, IP Office and the
generic driver's): any split of a capture gives the same calls as the whole capture."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pbx_drivers import CAPTURE_NAMES, check_any_split, load_capture


@pytest.mark.parametrize("name", CAPTURE_NAMES)
@settings(max_examples=40)
@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10))
def test_any_split_gives_the_same_calls(name, cuts):
    check_any_split(load_capture(name), cuts)
