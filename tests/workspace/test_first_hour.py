"""A newcomer's first hour (issue 13): ws --version, ws init makes jobs/, ws login on remotes without secrets."""

from __future__ import annotations

import json

from tests.conftest import one_error_line


def test_ws_version_prints_the_package_version(run_ws, tmp_path):
    from importlib import metadata

    proc = run_ws(tmp_path, "--version", check=True)
    assert proc.stdout == f"ws {metadata.version('ws')}\n"


def test_ws_version_json_names_every_format_version(run_ws, tmp_path):
    from catalog.migrations import MIGRATIONS
    from catalog.versions import SCHEMA_VERSION
    from sync.remote import FORMAT as REMOTE_FORMAT
    from workspace.config import FORMAT as LOCAL_FORMAT

    info = json.loads(run_ws(tmp_path, "version", "--json", check=True).stdout)
    assert info["catalog_schema"] == MIGRATIONS[-1].version == SCHEMA_VERSION
    assert info["remote_format"] == REMOTE_FORMAT
    assert info["local_format"] == LOCAL_FORMAT
    assert info["python"].count(".") == 2 and info["version"]
    text = run_ws(tmp_path, "version", check=True).stdout
    assert f"catalog schema:        {SCHEMA_VERSION}" in text


def test_init_makes_an_empty_jobs_folder(run_ws, tmp_path):
    run_ws(tmp_path, "init", "proj", check=True)
    assert (tmp_path / "proj" / "jobs").is_dir()
    assert not any((tmp_path / "proj" / "jobs").iterdir())
    status = json.loads(run_ws(tmp_path / "proj", "status", "--json", check=True).stdout)
    assert status["added"] == []


def test_init_keeps_an_existing_jobs_file(run_ws, tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "jobs").write_text("not a folder\n")
    run_ws(tmp_path, "init", "proj", check=True)
    assert (tmp_path / "proj" / "jobs").read_text() == "not a folder\n"


def test_login_on_a_folder_remote_says_no_secret_is_needed(run_ws, tmp_path):
    run_ws(tmp_path, "init", "proj", check=True)
    proj = tmp_path / "proj"
    run_ws(proj, "remote", "add", "origin", tmp_path / "remote", check=True)
    # no keyring backend at all: a folder remote does not need one
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    proc = run_ws(proj, "login", "origin", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "needs no secret" in proc.stdout
    data = json.loads(run_ws(proj, "login", "origin", "--json", env=env, check=True).stdout)
    assert data["stored"] == [] and data["needs_secrets"] is False


def test_login_without_a_keyring_backend_says_how_to_get_one_before_asking(run_ws, tmp_path):
    run_ws(tmp_path, "init", "proj", check=True)
    proj = tmp_path / "proj"
    run_ws(proj, "remote", "add", "s3data", "s3://bucket/x", "--option", "endpoint_url=http://127.0.0.1:9",
           check=True)
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    proc = run_ws(proj, "login", "s3data", env=env)  # stdin is empty: a prompt would fail differently
    assert proc.returncode == 11
    line = one_error_line(proc)
    assert "keyrings.alt" in line and "AWS_ACCESS_KEY_ID" in line and "WS_REMOTE_S3DATA_<KEY>" in line
    proc = run_ws(proj, "login", "s3data", "--key", "key=a", "--key", "secret=b", env=env)
    assert proc.returncode == 11 and "keyrings.alt" in one_error_line(proc)



def test_backend_login_without_a_keyring_backend_names_the_backends_variables_before_asking(run_ws, tmp_path):
    run_ws(tmp_path, "init", "proj", check=True)
    proj = tmp_path / "proj"
    run_ws(proj, "backend", "add", "cloud", "prominence", "-o", "url=http://127.0.0.1:9", check=True)
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    proc = run_ws(proj, "login", "cloud", env=env)  # stdin is empty: a prompt would fail differently
    assert proc.returncode == 11
    line = one_error_line(proc)
    assert "keyrings.alt" in line and "WS_BACKEND_CLOUD_<KEY>" in line and "WS_REMOTE_" not in line, line
    assert "backend 'cloud'" in line
    proc = run_ws(proj, "login", "cloud", "--key", "token=abc", env=env)
    line = one_error_line(proc)
    assert proc.returncode == 11 and "WS_BACKEND_CLOUD_<KEY>" in line and "WS_REMOTE_" not in line, line
