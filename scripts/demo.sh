#!/usr/bin/env bash
# The main job, end to end, on a fresh machine: set up, start OpenSearch (from Maven Central, unless
# OPENSEARCH_URL names a cluster), ingest the Icecat catalog, search it in each mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
PORT=${TBHNS_PORT:-9200}
[ -n "${OPENSEARCH_URL:-}" ] || tbhns opensearch start --port "$PORT"
tbhns ingest --dataset icecat --alias products --rebuild --port "$PORT"
tbhns search "wireless headphones" --mode bm25 --k 5 --port "$PORT"
tbhns search "wireless headphones" --mode semantic --k 5 --port "$PORT"
