"""Run the copy-paste sessions of README.md and docs/*.md, so the documentation cannot drift.

The marker
----------
A fenced block is a *session* when the last non-blank thing before its opening
fence is an HTML comment starting with ``session``::

    <!-- session NAME [needs=s3,server] -->
    ```console
    $ ws init demo
    Initialized empty ws workspace in ...
    $ cd demo
    ```

- Blocks with the same ``NAME`` in one file form one session: they run in file
  order, in one bash process, in a fresh scratch folder (which is also
  ``$HOME``), so a ``cd`` or a variable carries over from block to block.
- Lines inside the comment after the first are hidden setup commands, run
  before the block (make the files a session talks about without showing it)::

      <!-- session guide
      printf 'id,label\\n1,cat\\n' > data/labels.csv
      -->

- ``console`` blocks: a line starting with ``$ `` is a command (a trailing
  ``\\`` continues it; a here-document ``<<'EOF'`` takes the lines up to
  ``EOF``); other lines are its expected output. A command whose expected
  output has a line starting with ``ws: error:`` must fail (non-zero exit and
  ``ws: error:`` on stderr); every other command must exit 0. The output
  itself is not compared (ids and times change from run to run).
- ``sh``/``bash`` blocks: every line (with its continuations and
  here-documents) is a command and must exit 0.
- ``needs=...`` names what the session needs from the test run; the test
  (tests/test_docs_sessions.py, ``NEEDS``) starts it and passes its
  environment variables: ``s3`` (a moto S3 server and a fresh bucket:
  ``S3_ENDPOINT``, ``BUCKET``, ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``), ``server`` (a ws
  server: ``WS_SERVER_URL``, ``WS_TOKEN`` an admin token), ``slurm`` (the
  single-node Slurm of scripts/slurm-up.sh: ``SLURM_CONF``).

``python tests/docs_sessions.py FILE.md [NAME]`` runs a file's sessions from
the command line (sessions with ``needs`` are skipped there).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
# "session" then a space, the comment's end or the line's end: not "session:" (a note about one run elsewhere)
_MARKER = re.compile(r"^<!--\s*session(?=\s|-->|$)(.*?)(-->)?\s*$")


@dataclass
class Command:
    """One command of a session: its text, what it must do, where it is written."""

    text: str
    line: int
    must_fail: bool = False


@dataclass
class Session:
    """The commands of one named session in one file, in order."""

    path: Path
    name: str
    needs: set[str] = field(default_factory=set)
    commands: list[Command] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.name}"


def _split_commands(lines: list[tuple[int, str]], console: bool) -> list[Command]:
    """Commands (with continuations and here-documents) out of a block's numbered lines."""
    out: list[Command] = []
    i = 0
    while i < len(lines):
        lineno, text = lines[i]
        i += 1
        if console:
            if not text.startswith("$ ") and text != "$":
                if out and text.startswith("ws: error:"):
                    out[-1].must_fail = True
                continue
            text = text[2:]
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        parts = [text]
        while parts[-1].endswith("\\") and i < len(lines):
            parts.append(lines[i][1])
            i += 1
        for m in _HEREDOC.finditer("\n".join(parts)):
            end = m.group(2)
            while i < len(lines):
                parts.append(lines[i][1])
                i += 1
                if parts[-1].strip() == end:
                    break
        out.append(Command("\n".join(parts), lineno))
    return out


def sessions(path: Path | str) -> list[Session]:
    """Every session of a Markdown file, in order of first appearance."""
    path = Path(path)
    text = path.read_text(encoding="utf-8").splitlines()
    found: dict[str, Session] = {}
    i = 0
    last_comment: tuple[str, list[tuple[int, str]]] | None = None  # (header, hidden lines)
    while i < len(text):
        line = text[i]
        m = _MARKER.match(line.strip())
        if m:
            header, hidden = m.group(1).strip(), []
            closed = bool(m.group(2))
            i += 1
            while not closed and i < len(text):
                if text[i].strip().endswith("-->"):
                    rest = text[i].strip()[:-3].rstrip()
                    if rest:
                        hidden.append((i + 1, rest))
                    closed = True
                else:
                    hidden.append((i + 1, text[i]))
                i += 1
            last_comment = (header, hidden)
            continue
        fence = _FENCE.match(line)
        if fence:
            indent, ticks, lang = fence.groups()
            body: list[tuple[int, str]] = []
            i += 1
            while i < len(text) and not text[i].strip().startswith(ticks):
                body.append((i + 1, text[i][len(indent):] if text[i].startswith(indent) else text[i]))
                i += 1
            i += 1
            if last_comment is not None:
                header, hidden = last_comment
                words = header.split()
                name = words[0] if words and "=" not in words[0] else "default"
                session = found.setdefault(name, Session(path, name))
                for word in words:
                    if word.startswith("needs="):
                        session.needs.update(n for n in word[6:].split(",") if n)
                session.commands += _split_commands(hidden, console=False)
                session.commands += _split_commands(body, console=lang == "console")
            last_comment = None
            continue
        if line.strip():
            last_comment = None
        i += 1
    return list(found.values())


def all_sessions(paths: list[Path] | None = None) -> list[Session]:
    """The sessions of README.md and every docs/*.md (or of ``paths``)."""
    if paths is None:
        paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [s for p in paths for s in sessions(p)]


class SessionFailed(AssertionError):
    """A command of a session did not do what the documentation says."""


def _script(session: Session, logs: Path) -> str:
    lines = ["set -o pipefail"]
    for n, cmd in enumerate(session.commands):
        out, err = shlex.quote(str(logs / f"{n}.out")), shlex.quote(str(logs / f"{n}.err"))
        lines.append(f"echo {n} > {shlex.quote(str(logs / 'at'))}")
        if cmd.must_fail:
            lines.append(f"if {{ {cmd.text}\n}} >{out} 2>{err}; then exit 101; fi")
            lines.append(f"grep -q '^ws: error:' {err} || exit 102")
        else:
            lines.append(f"{{ {cmd.text}\n}} >{out} 2>{err} || exit 100")
    lines.append(f"echo done > {shlex.quote(str(logs / 'at'))}")
    return "\n".join(lines) + "\n"


def run_session(session: Session, scratch: Path, env: dict[str, str] | None = None,
                timeout: float = 600) -> None:
    """Run a session's commands in ``scratch`` (also $HOME); raise SessionFailed naming the first bad command."""
    scratch.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="session-logs-", dir=scratch.parent))
    full_env = dict(os.environ, HOME=str(scratch), XDG_DATA_HOME=str(scratch / ".local" / "share"),
                    XDG_CONFIG_HOME=str(scratch / ".config"), **(env or {}))  # a file keyring stays in scratch
    # the ws of the Python running the tests, whether or not its virtualenv is activated
    full_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), full_env.get("PATH", "")])
    for name in ("WS_DIR", "AWS_ENDPOINT_URL"):  # a session says what it uses
        if name not in (env or {}):
            full_env.pop(name, None)
    proc = subprocess.Popen(["bash", "-c", _script(session, logs)], cwd=scratch, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: what it starts goes with it
    try:
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the session left running (a server, a watcher)
        except ProcessLookupError:
            pass
        proc.wait()
    at = (logs / "at").read_text().strip() if (logs / "at").exists() else "0"
    if proc.returncode == 0 and at == "done":
        return
    if at == "done" or not at.isdigit():
        raise SessionFailed(f"{session.id}: the session script failed ({proc.returncode}): {stderr}")
    n = int(at)
    cmd = session.commands[n]
    out = (logs / f"{n}.out").read_text(errors="replace") if (logs / f"{n}.out").exists() else ""
    err = (logs / f"{n}.err").read_text(errors="replace") if (logs / f"{n}.err").exists() else ""
    why = {100: "failed", 101: "succeeded but the documentation shows it failing",
           102: "failed without a 'ws: error:' line"}.get(proc.returncode, f"stopped ({proc.returncode})")
    raise SessionFailed(f"{session.path.name} line {cmd.line} (session {session.name!r}): command {why}:\n"
                        f"$ {cmd.text}\n--- stdout ---\n{out[-3000:]}--- stderr ---\n{err[-3000:]}")


if __name__ == "__main__":  # pragma: no cover - a convenience for writing docs
    target = Path(sys.argv[1])
    wanted = sys.argv[2] if len(sys.argv) > 2 else None
    for s in sessions(target):
        if (wanted and s.name != wanted) or s.needs:
            print(f"skip {s.id}" + (f" (needs {','.join(sorted(s.needs))})" if s.needs else ""))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            run_session(s, Path(tmp) / "scratch")
        print(f"ok   {s.id} ({len(s.commands)} commands)")
