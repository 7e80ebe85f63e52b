"""The README's short tour runs as written (its blocks are one session, see tests/docs_sessions.py).

Every block marked ``<!-- session tour -->`` runs verbatim, in order, in one
shell in a scratch folder that is also $HOME; the S3 lines run against the
moto server (``needs=s3``: $BUCKET, $S3_ENDPOINT and the AWS_* keys).
"""

from __future__ import annotations

from tests.docs_sessions import ROOT, run_session, sessions
from tests.test_docs_sessions import moto_server, s3_env  # noqa: F401 (fixtures)


def _tour():
    found = {s.name: s for s in sessions(ROOT / "README.md")}
    assert "tour" in found, "README.md has no <!-- session tour --> block"
    return found["tour"]


def test_the_tour_covers_what_the_readme_promises():
    text = "\n".join(c.text for c in _tour().commands)
    for command in ("ws init", "ws commit", "ws diff HEAD~1", "cat > jobs/align.yaml", "cat > align.py",
                    "ws run align", "ws jobs logs", "ws release create", "ws remote add origin", "ws login origin",
                    "ws push", "ws clone", "ws remote add s3", "--option endpoint_url=", "ws fsck", "ws gc"):
        assert command in text, command


def test_the_readme_tour_runs_as_written(tmp_path, s3_env):  # noqa: F811
    tour = _tour()
    assert tour.needs == {"s3"}
    run_session(tour, tmp_path / "home", s3_env)
    home = tmp_path / "home"
    assert sorted(p.name for p in (home / "my-project" / "out").iterdir()) == ["a.bam", "b.bam", "c.bam"]
    assert (home / "reads-copy" / "data" / "labels.csv").exists()
    assert (home / "reads-s3" / "out" / "c.bam").read_text() == "c\t1 reads\n"
