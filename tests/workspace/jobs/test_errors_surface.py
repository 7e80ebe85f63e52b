"""Errors in the jobs code surface instead of being swallowed by catch-all handlers."""

from __future__ import annotations

import getpass

import pytest

from sync.compute import registry
from tests.conftest import write
from workspace.errors import DamagedObjectError
from workspace.jobs import environment, notify
from workspace.jobs.specfile import load_spec


def test_a_broken_compute_registry_is_not_hidden_by_a_fallback_list(tmp_path, monkeypatch):
    def broken():
        raise RuntimeError("registry exploded")

    monkeypatch.setattr(registry, "names", broken)
    p = write(tmp_path, "jobs/x.yaml", "command: run\nbackend: slurm\n")
    with pytest.raises(RuntimeError, match="registry exploded"):
        load_spec(p)


def test_spec_backends_are_the_registry_names(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "names", lambda: ["local"])
    p = write(tmp_path, "jobs/x.yaml", "command: run\nbackend: slurm\n")
    with pytest.raises(Exception, match="unknown backend 'slurm' \\(known: local\\)"):
        load_spec(p)


def test_unknown_user_falls_back_but_other_errors_surface(monkeypatch):
    def no_user():
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_user)
    monkeypatch.setenv("USER", "someone")
    assert environment.base_environment()["user"] == "someone"

    def bug():
        raise ValueError("a bug, not a missing passwd entry")

    monkeypatch.setattr(getpass, "getuser", bug)
    with pytest.raises(ValueError, match="a bug"):
        environment.base_environment()


def test_corrupt_notify_settings_are_an_error_not_silence(tmp_path):
    assert notify.load_settings(str(tmp_path / "missing.json")) == {}  # no file: nobody to notify
    bad = tmp_path / "notify.json"
    bad.write_text('{"align": {"on": ["fini')
    with pytest.raises(DamagedObjectError, match="notify.json"):
        notify.load_settings(str(bad))

