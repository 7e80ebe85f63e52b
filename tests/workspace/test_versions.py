"""Version parsing, bumping and the expressions that pick a release version."""

from __future__ import annotations

import pytest
import semver
from hypothesis import given, settings
from hypothesis import strategies as st

from workspace.errors import InvalidArgument
from workspace.releases.versions import (
    InvalidVersion,
    InvalidVersionExpression,
    NoMatchingVersion,
    bump,
    highest,
    matches,
    parse_version,
    select,
)

VERSIONS = ["0.0.3", "0.1.0", "0.2.1", "0.2.3", "1.0.0", "1.2.0", "1.2.5", "1.3.0", "2.0.0-rc.1"]


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("latest", "1.3.0"),
        ("", "1.3.0"),
        ("*", "1.3.0"),
        ("1.2.0", "1.2.0"),
        ("=1.2.0", "1.2.0"),
        ("2.0.0-rc.1", "2.0.0-rc.1"),
        ("^1.2", "1.3.0"),
        ("^1.2.1", "1.3.0"),
        ("^0.2", "0.2.3"),
        ("^0.0.3", "0.0.3"),
        ("~1.2", "1.2.5"),
        ("~1", "1.3.0"),
        ("~0.2.1", "0.2.3"),
        (">=1.0,<2.0", "1.3.0"),
        (">=1.0, <1.3", "1.2.5"),
        (">1.2.0,<=1.2.5", "1.2.5"),
        ("!=1.3.0,>=1.0,<2", "1.2.5"),
        ("<1", "0.2.3"),
        ("1.2", "1.2.5"),
        ("1", "1.3.0"),
        (">=1.0", "1.3.0"),  # pre-releases only when the expression names one
        (">=2.0.0-rc.1", "2.0.0-rc.1"),
    ],
)
def test_select_picks_the_highest_match(expr, expected):
    assert select(VERSIONS, expr) == expected


def test_latest_falls_back_to_prereleases_when_nothing_else():
    assert select(["1.0.0-alpha", "1.0.0-beta", "0.9.0-rc.1"], "latest") == "1.0.0-beta"


@pytest.mark.parametrize("expr", [">=x", "^", "1.2.3.4", ">>1", "~", "^1.2-rc", ">=1.0,,<2", "latest-ish"])
def test_bad_expressions_are_usage_errors(expr):
    with pytest.raises(InvalidVersionExpression) as info:
        select(VERSIONS, expr)
    assert info.value.exit_code == 2
    assert repr(expr) in str(info.value)


def test_bad_expression_is_refused_even_without_versions():
    with pytest.raises(InvalidVersionExpression):
        select([], ">=nope")


def test_no_match_is_not_found_and_lists_what_exists():
    with pytest.raises(NoMatchingVersion) as info:
        select(VERSIONS, ">=3")
    assert info.value.exit_code == 4
    assert "1.3.0" in str(info.value)
    with pytest.raises(NoMatchingVersion):
        select([], "latest")


@pytest.mark.parametrize("text", ["1.2", "v", "1.2.3.4", "01.2.3", "", "1.2.3-"])
def test_parse_version_rejects_non_semver(text):
    with pytest.raises(InvalidVersion) as info:
        parse_version(text)
    assert info.value.exit_code == 2
    assert "semantic versioning" in str(info.value)


def test_bump_counts_from_zero_and_from_the_previous_version():
    assert bump(None, "major") == "1.0.0"
    assert bump(None, "minor") == "0.1.0"
    assert bump(None, "patch") == "0.0.1"
    assert bump("1.2.3", "minor") == "1.3.0"
    assert bump("1.2.3", "major") == "2.0.0"
    assert parse_version(bump("1.0.0-rc.1", "patch")) > parse_version("1.0.0-rc.1")
    with pytest.raises(InvalidArgument):
        bump("1.0.0", "huge")


def test_highest_orders_by_semver_not_text():
    assert highest(["1.10.0", "1.9.0", "1.10.0-rc.1"]) == "1.10.0"
    assert highest([]) is None


def test_matches_single_versions():
    assert matches("1.2.3", "^1.0")
    assert not matches("2.0.0", "^1.0")
    assert not matches("1.5.0-rc.1", "^1.0")


_version = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (f"-rc.{pre}" if pre is not None else ""),
    st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.one_of(st.none(), st.integers(0, 3)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_version, min_size=1, max_size=12, unique=True))
def test_latest_is_the_highest_stable_version(versions):
    parsed = [semver.Version.parse(v) for v in versions]
    stable = [v for v in parsed if not v.prerelease]
    assert select(versions, "latest") == str(max(stable or parsed))


@settings(max_examples=200, deadline=None)
@given(st.lists(_version, min_size=1, max_size=12, unique=True), st.integers(0, 5), st.integers(0, 5))
def test_caret_result_satisfies_its_range(versions, major, minor):
    expr = f"^{major}.{minor}"
    try:
        got = semver.Version.parse(select(versions, expr))
    except NoMatchingVersion:
        # then no stable version lies in the range
        assert not any(matches(v, expr) for v in versions)
        return
    assert got >= semver.Version(major, minor, 0) and not got.prerelease
    upper = semver.Version(major + 1, 0, 0) if major else semver.Version(0, minor + 1, 0)
    assert got < upper
