#!/usr/bin/env bash
# The main job, end to end, on a fresh machine: set up, start OpenSearch (from Maven Central, unless
# OPENSEARCH_URL names a cluster), train a small TB-HNS encoder on Icecat's real judged queries, ingest the
# catalog with it, search in each mode, and benchmark BM25 vs semantic vs hybrid on the held-out queries.
# DEMO_STEPS sets the training length (the recipe's full run is `tbhns train training/icecat-taxonomy.toml`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
PORT=${TBHNS_PORT:-9200}
STEPS=${DEMO_STEPS:-80}
[ -n "${OPENSEARCH_URL:-}" ] || tbhns opensearch start --port "$PORT"
tbhns train training/icecat-taxonomy.toml --max-steps "$STEPS" --output runs/train/icecat-taxonomy --port "$PORT"
tbhns ingest --dataset icecat --encoder runs/train/icecat-taxonomy --alias products --rebuild --port "$PORT"
for mode in bm25 semantic hybrid; do
  tbhns search "wireless headphones" --mode "$mode" --k 5 --encoder runs/train/icecat-taxonomy --port "$PORT"
done
tbhns bench run benchmarks/configs/icecat.toml --out runs/bench/icecat --port "$PORT"
