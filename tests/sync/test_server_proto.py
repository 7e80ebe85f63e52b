"""The committed generated code of sync/server/ws.proto is what the generator makes of it today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_regenerating_the_proto_gives_the_committed_files(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the test extra) generates the gRPC code")
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    fresh = gen.generate(tmp_path)
    assert [p.name for p in fresh] == ["ws_pb2.py", "ws_pb2.pyi", "ws_pb2_grpc.py"]
    stale = [p.name for p in fresh if p.read_bytes() != (ROOT / "sync" / "server" / p.name).read_bytes()]
    assert not stale, f"run 'python scripts/gen_proto.py' and commit the result: {stale} differ from ws.proto"


def test_the_service_names_every_rpc_the_docs_list():
    from sync.server import ws_pb2

    methods = set(ws_pb2.DESCRIPTOR.services_by_name["Remote"].methods_by_name)
    doc = (ROOT / "docs" / "server.md").read_text()
    undocumented = sorted(m for m in methods if f"`{m}`" not in doc)
    assert not undocumented, f"docs/server.md does not describe {undocumented}"
