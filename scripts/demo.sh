#!/usr/bin/env bash
# A first ws session on embedded defaults: SQLite catalog, a local folder as the
# remote, the local job backend. Installs ws into .venv on first use.
#   usage: scripts/demo.sh [WORKDIR]      (default: a new folder under /tmp)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${WS_VENV:-$ROOT/.venv}
if [ ! -x "$VENV/bin/ws" ]; then
  echo "== installing ws into $VENV"
  python3 -m venv "$VENV"
  if ! "$VENV/bin/python" -m pip install -e "$ROOT" >"$VENV/install.log" 2>&1; then
    tail -20 "$VENV/install.log"; echo "install failed; full log: $VENV/install.log" >&2; exit 1
  fi
fi
export PATH="$VENV/bin:$PATH"
WORK=${1:-$(mktemp -d /tmp/ws-demo.XXXXXX)}
mkdir -p "$WORK"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

cd "$WORK"
step ws init project
cd project
mkdir -p data/raw
python3 - <<'PY'
import random
r = random.Random(1)
for s in ("a", "b", "c"):
    with open(f"data/raw/{s}.csv", "w") as f:
        f.write("x,y\n" + "".join(f"{r.random():.6f},{r.random():.6f}\n" for _ in range(20000)))
open("data/raw/big.bin", "wb").write(r.randbytes(8 << 20))
PY
mkdir -p jobs tools
cat > tools/stats.py <<'PY'
import statistics, sys
src, dst = sys.argv[1], sys.argv[2]
xs = [float(line.split(",")[0]) for line in open(src).readlines()[1:]]
open(dst, "w").write(f"{src}: mean={statistics.mean(xs):.4f} n={len(xs)}\n")
PY
cat > jobs/stats.yaml <<'YAML'
name: stats
command: python3 tools/stats.py data/raw/{sample}.csv out/{sample}.txt
inputs: ["data/raw/{sample}.csv"]
outputs: ["out/{sample}.txt"]
params: {sample: [a, b, c]}
resources: {cpus: 1, memory: 256MB, walltime: 5m}
policies: {retries: 1, timeout: 2m}
YAML
mkdir -p out
step ws status
step ws commit -m "raw data and a job spec"
step ws run stats --wait
step ws jobs
step ws log --oneline
step ws release create dataset --version 1.0.0 -m "first public cut"
step ws remote add origin "$WORK/remote"
step ws push origin
echo "more" >> data/raw/a.csv
step ws commit -m "fix a.csv"
step ws release create dataset --bump minor
step ws status
step ws push origin
step ws clone "$WORK/remote" dataset@latest "$WORK/colleague"
step ws -C "$WORK/colleague" ls
step ws -C "$WORK/colleague" fsck
printf '\nDemo workspace: %s/project   remote: %s/remote   clone: %s/colleague\n' "$WORK" "$WORK" "$WORK"
