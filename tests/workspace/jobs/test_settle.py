"""Incremental runs settle: after a change, one run re-runs what it must, the next runs nothing."""

from __future__ import annotations

from tests.conftest import write
from workspace.jobs import engine


def spec(ws, name: str, body: str) -> None:
    write(ws.root, f"jobs/{name}.yaml", f"name: {name}\n" + body)


def states(ws, name: str, **kw) -> dict:
    res = engine.run_spec(ws, name, cwd=str(ws.root), wait=True, **kw)
    return {(j["name"], tuple(sorted(j["params"].items()))): j["state"] for j in res["jobs"]}


def ran(st: dict) -> set:
    return {k[0] for k, v in st.items() if v != "SKIPPED"}


def test_chain_settles(ws):
    write(ws.root, "data/in.txt", "1")
    spec(ws, "a", "command: mkdir -p out && cat data/in.txt > out/a.txt\ninputs: [data/in.txt]\noutputs: [out/a.txt]\n")
    spec(ws, "b", "command: cat out/a.txt > out/b.txt\ninputs: [out/a.txt]\noutputs: [out/b.txt]\ndepends_on: [a]\n")
    spec(ws, "c", "command: cat out/b.txt > out/c.txt\ninputs: [out/b.txt]\noutputs: [out/c.txt]\ndepends_on: [b]\n")
    assert ran(states(ws, "c")) == {"a", "b", "c"}
    assert ran(states(ws, "c")) == set()
    write(ws.root, "data/in.txt", "2")
    assert ran(states(ws, "c")) == {"a", "b", "c"}
    assert ran(states(ws, "c")) == set()
    assert (ws.root / "out/c.txt").read_text() == "2"


def test_middle_input_change_reruns_it_and_dependents_only(ws):
    write(ws.root, "data/in.txt", "1")
    write(ws.root, "data/extra.txt", "x")
    spec(ws, "a", "command: mkdir -p out && cat data/in.txt > out/a.txt\ninputs: [data/in.txt]\noutputs: [out/a.txt]\n")
    spec(ws, "b", "command: cat out/a.txt data/extra.txt > out/b.txt\ninputs: [out/a.txt, data/extra.txt]\n"
                  "outputs: [out/b.txt]\ndepends_on: [a]\n")
    spec(ws, "c", "command: cat out/b.txt > out/c.txt\ninputs: [out/b.txt]\noutputs: [out/c.txt]\ndepends_on: [b]\n")
    states(ws, "c")
    write(ws.root, "data/extra.txt", "y")
    assert ran(states(ws, "c")) == {"b", "c"}
    assert ran(states(ws, "c")) == set()
    assert (ws.root / "out/c.txt").read_text() == "1y"


def test_diamond_with_sweeps_settles(ws):
    for s in "pq":
        write(ws.root, f"data/{s}.txt", s)
    spec(ws, "a", "command: mkdir -p out/a && cat data/{s}.txt > out/a/{s}.txt\ninputs: ['data/{s}.txt']\n"
                  "outputs: ['out/a/{s}.txt']\nparams: {s: [p, q]}\n")
    spec(ws, "b", "command: mkdir -p out/b && cat out/a/*.txt > out/b/all.txt\ninputs: ['out/a/']\n"
                  "outputs: [out/b/]\ndepends_on: [a]\n")
    spec(ws, "c", "command: mkdir -p out/c && cat out/a/{s}.txt > out/c/{s}.txt\ninputs: ['out/a/{s}.txt']\n"
                  "outputs: ['out/c/{s}.txt']\nparams: {s: [p, q]}\ndepends_on: [a]\n")
    spec(ws, "d", "command: cat out/b/all.txt out/c/*.txt > out/d.txt\ninputs: [out/b/all.txt, out/c/]\n"
                  "outputs: [out/d.txt]\ndepends_on: [b, c]\n")
    assert ran(states(ws, "d")) == {"a", "b", "c", "d"}
    assert ran(states(ws, "d")) == set()
    write(ws.root, "data/q.txt", "Q")
    first = states(ws, "d")
    assert first[("a", (("s", "p"),))] == "SKIPPED" and first[("a", (("s", "q"),))] == "SUCCEEDED"
    assert ran(first) == {"a", "b", "c", "d"}
    assert ran(states(ws, "d")) == set()
    assert (ws.root / "out/d.txt").read_text() == "pQpQ"


def test_failed_member_rerun_then_settles(ws):
    write(ws.root, "data/in.txt", "1")
    spec(ws, "a", "command: mkdir -p out && cat data/in.txt > out/a.txt\ninputs: [data/in.txt]\noutputs: [out/a.txt]\n")
    spec(ws, "b", "command: test -e .ok-{n} && cat out/a.txt > out/b{n}.txt\ninputs: [out/a.txt]\n"
                  "outputs: ['out/b{n}.txt']\nparams: {n: [1, 2]}\ndepends_on: [a]\n")
    write(ws.root, ".ok-1", "")
    first = states(ws, "b")
    assert first[("b", (("n", 2),))] == "FAILED" and first[("b", (("n", 1),))] == "SUCCEEDED"
    write(ws.root, ".ok-2", "")
    wf = engine.rerun_failed(ws, wait=True)
    from catalog import jobs as cj

    assert [j["state"] for j in cj.list_jobs(ws.catalog, workflow=wf)] == ["SUCCEEDED"]
    assert ran(states(ws, "b")) == set()
    write(ws.root, "data/in.txt", "2")
    assert ran(states(ws, "b")) == {"a", "b"}
    assert ran(states(ws, "b")) == set()
