"""docs/cli.md documents every command and option of ``ws`` (walks the Typer app, so new ones cannot be missed).

Each command (``ws jobs logs``) needs a heading of its own in docs/cli.md whose
text starts with the command (``## ws jobs logs`` or ``### ws jobs logs``, then
optionally `` — ...`` or `` (...)``), and each of its options must be written,
by every one of its names (``--follow`` and ``-f``), somewhere in that section
(up to the next heading of the same or a higher level). Options of ``ws``
itself (``-C``, ``--version``) go anywhere in the file. Hidden commands are
internal and left out.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
_HEADING = re.compile(r"^(#{2,4})\s+(.*?)\s*$")


def commands(group, prefix: str = "ws"):
    """(path, command) for ``group`` and every visible command below it."""
    yield prefix, group
    if hasattr(group, "commands"):  # a group (typer vendors its own click: no isinstance)
        for name, cmd in sorted(group.commands.items()):
            if not cmd.hidden:
                yield from commands(cmd, f"{prefix} {name}")


def option_names(cmd) -> list[str]:
    names = []
    for p in cmd.params:
        if p.param_type_name == "option" and not getattr(p, "hidden", False):
            names += [n for n in (*p.opts, *p.secondary_opts) if n not in ("--help", "-h")]
    return names


def sections(text: str) -> dict[str, str]:
    """Heading command (``ws jobs logs``) -> the text of its section."""
    lines = text.splitlines()
    heads = [(i, len(m.group(1)), m.group(2)) for i, line in enumerate(lines) if (m := _HEADING.match(line))]
    out = {}
    for n, (i, level, title) in enumerate(heads):
        end = next((j for j, lv, _ in heads[n + 1:] if lv <= level), len(lines))
        name = re.split(r"\s+(?:—|-|\()", title.strip("`"), maxsplit=1)[0].strip("`").strip()
        if name.startswith("ws"):
            out[name] = "\n".join(lines[i:end])
    return out


def missing_from_docs(app: typer.Typer, text: str) -> list[str]:
    root = typer.main.get_command(app)
    secs = sections(text)
    missing = []
    for path, cmd in commands(root):
        if path == "ws":
            missing += [f"ws: option {o} (anywhere in the file)" for o in option_names(cmd)
                        if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
            continue
        body = secs.get(path)
        if body is None:
            missing.append(f"{path}: no section (a heading '## {path}' or '### {path}')")
            continue
        missing += [f"{path}: option {o}" for o in option_names(cmd)
                    if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", body)]
    return missing


def test_every_command_and_option_is_in_cli_md():
    from workspace.cli import app

    missing = missing_from_docs(app, DOC.read_text(encoding="utf-8"))
    assert not missing, "docs/cli.md does not document:\n  " + "\n  ".join(missing)


def test_the_check_sees_a_missing_option():
    from workspace.cli import app

    text = DOC.read_text(encoding="utf-8").replace("--oneline", "--one-line")
    assert "ws log: option --oneline" in missing_from_docs(app, text)
