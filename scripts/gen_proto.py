#!/usr/bin/env python3
"""Regenerate the ws server's gRPC code from sync/server/ws.proto (grpcio-tools, the test extra).

usage: python scripts/gen_proto.py [OUT_DIR]

Writes sync/server/ws_pb2.py, ws_pb2.pyi and ws_pb2_grpc.py under OUT_DIR (default:
the repository, i.e. in place). The files are committed; tests/sync/test_server_proto.py
regenerates them into a temporary folder and fails when they differ from the committed ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO = "sync/server/ws.proto"  # relative to ROOT: the generated imports become `from sync.server import ws_pb2`


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) on the proto; returns the generated files."""
    from grpc_tools import protoc

    out_dir = Path(out_dir)
    (out_dir / "sync" / "server").mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")  # well-known types, as grpc_tools' own main adds
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}", str(ROOT / PROTO)]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO}")
    return [out_dir / "sync" / "server" / name for name in ("ws_pb2.py", "ws_pb2.pyi", "ws_pb2_grpc.py")]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(path)
