"""tests/bench/run.py --quick end to end on small data, so the issue-12 harness cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "tests" / "bench" / "run.py"
MAKE = Path(os.environ.get("WS_BENCH_MAKE", REPO / "tests/bench/make_dataset.py"))


@pytest.mark.slow
def test_run_quick_prints_every_ratio_with_its_rounds(tmp_path):
    proc = subprocess.run([sys.executable, str(RUN), "--quick", "--work", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    closing = out.split("=== issue 12 ratios", 1)[1]
    for name in ("commit", "status", "sitepkgs"):
        assert sum(line.startswith(f"  {name} ") and " round " in line for line in out.splitlines()) >= 3
    assert "vs cp -r + sync" in closing and closing.count("vs git status --porcelain") == 2
    assert ("vs restic restore" in closing) or ("clone vs restic restore: skipped" in closing)
    assert ("vs dvc add" in closing) or ("commit vs dvc add: skipped" in closing)
    assert not (tmp_path / "run").exists()  # the run's workspaces are removed; the datasets stay cached
    assert (tmp_path / "data" / "many-quick.done").exists()


SHARED = REPO.parent / "shared" / "bench" / "make_dataset.py"


@pytest.mark.skipif(not SHARED.exists(), reason="no ../shared checkout beside the repo (CI): nothing to compare with")
def test_the_dataset_maker_is_the_shared_one():
    """tests/bench/make_dataset.py is a copy of ../shared/bench/make_dataset.py, so figures compare."""
    assert MAKE.read_bytes() == SHARED.read_bytes()
