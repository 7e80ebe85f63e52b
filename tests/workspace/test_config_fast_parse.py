"""config.load reads ws's plain config without tomllib; within that subset it must agree with tomllib."""

from __future__ import annotations

import tomllib

import pytest
import tomli_w
from hypothesis import given, settings, strategies as st

from workspace import config
from workspace.errors import InvalidConfig

keys = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=6)
values = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(), st.text(max_size=12),
                   st.floats(allow_nan=False), st.lists(st.integers(), max_size=3))
tables = st.recursive(st.dictionaries(keys, values, max_size=4),
                      lambda inner: st.dictionaries(keys, st.one_of(values, inner), max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(tables)
def test_the_subset_parser_agrees_with_tomllib_or_steps_aside(data):
    text = tomli_w.dumps(data)
    fast = config._parse_simple(text)
    assert fast is None or fast == tomllib.loads(text)


@pytest.mark.parametrize("text", [
    "[core]\nformat = 2\n",
    '[core]\nformat = 2\n\n[remote.origin]\nurl = "s3://bucket/ds"\nlink = true\n',
    "# a comment\n[ core ]\r\nformat = 2\n  [ a . b ]\nx = -3\n[a]\ny = \"\"\n\tz=0\n",
])
def test_ws_own_configs_take_the_fast_path(text):
    assert config._parse_simple(text) == tomllib.loads(text)


@pytest.mark.parametrize("text", [
    "[core]\nformat = 2\nformat = 3\n",  # repeated key
    "[core]\n[core]\n",  # repeated table
    "[a]\nb = 1\n[a.b]\n",  # a table over a value
    "a = 1_000\n", "a = 0x1f\n", "a = +0\n", "a = 1979-05-27\n", "a = 1.5\n",
    'a = "tab\there"\n', 'a = "\\u00e9"\n', "a = 'literal'\n", "a.b = 1\n", '"q" = 1\n',
    "[[arr]]\nx = 1\n", "a = [1]\n", "a = {x = 1}\n", "a = \n", "a = 1 b\n", "a = true2\n", "a\r= 1\n", "a = 1 # one\n", "[a] # t\n", "a = 01\n", "a = -\n", "a = \"x\n", "[]\n", "[a.]\n",
    "a = \"x\" \"y\"\n", "# bell \x07\n", "= 1\n",
])
def test_anything_else_goes_to_tomllib(text):
    assert config._parse_simple(text) is None


def test_load_still_rejects_malformed_toml(tmp_path):
    (tmp_path / "config.toml").write_text("[core]\nformat = 2\nformat = 3\n")
    with pytest.raises(InvalidConfig, match="malformed TOML"):
        config.load(tmp_path / "config.toml")
    (tmp_path / "config.toml").write_bytes(b"[core]\nname = \"\xff\"\n")
    with pytest.raises(InvalidConfig, match="malformed TOML"):
        config.load(tmp_path / "config.toml")
    (tmp_path / "config.toml").write_text("core = 3\n")
    with pytest.raises(InvalidConfig, match=r"\[core\] must be a table"):
        config.load(tmp_path / "config.toml")
