"""Fuzz the configuration loader (``appliance/config.py``): random YAML trees built from the shipped
example (``appliance/example-config.yaml``) with subtrees replaced, removed or added, and random text
as a file. The outcome is an ``ApplianceConfig`` or a ``ConfigError`` whose every problem names a key
path and says what is wrong; never another exception (a technician must read what to fix, not a
traceback).
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from appliance.config import ApplianceConfig, load_config, parse_config
from appliance.errors import ConfigError
from tests.fuzz import FUZZ

EXAMPLE = yaml.safe_load((Path(__file__).resolve().parents[2] / "appliance" / "example-config.yaml").read_text())

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True), st.text(max_size=20),
                    st.sampled_from(["", "0", "-1", "9", "101-120", "USD", "UTC", "tcp-client", "serial", "fias",
                                     "mitel_mivb", "generic", "sqlite:///x.db", "1e9", "0.30", "yes", "Europe/Berlin"]))
trees = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)), max_leaves=12)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _paths(value, (*prefix, index))


@st.composite
def mutated_config(draw):
    config = copy.deepcopy(EXAMPLE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = [p for p in _paths(config) if p]
        if not paths or not isinstance(config, dict):
            break
        path = draw(st.sampled_from(paths))
        parent = config
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(trees)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(trees)
        else:
            parent.append(draw(trees))
    return config


def check(outcome) -> None:
    if isinstance(outcome, ConfigError):
        assert outcome.problems
        for path, message in outcome.problems:
            assert isinstance(path, str) and isinstance(message, str) and message
    else:
        assert isinstance(outcome, ApplianceConfig)


def _parse(data):
    try:
        return parse_config(data, "fuzz.yaml")
    except ConfigError as exc:
        return exc


def test_the_example_config_loads() -> None:
    assert isinstance(parse_config(copy.deepcopy(EXAMPLE)), ApplianceConfig)


@FUZZ
@given(data=mutated_config())
def test_a_mutated_example_gives_a_config_or_config_error(data) -> None:
    check(_parse(data))


@FUZZ
@given(data=trees)
def test_any_yaml_tree_gives_a_config_or_config_error(data) -> None:
    check(_parse(data))


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                      mutated_config().map(lambda d: yaml.safe_dump(d)[:2000])))
def test_any_file_gives_a_config_or_config_error(tmp_path_factory, text) -> None:
    path = tmp_path_factory.mktemp("cfg") / "appliance.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        outcome = load_config(path)
    except ConfigError as exc:
        outcome = exc
    check(outcome)
