#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite against a real OpenSearch node:
# OPENSEARCH_URL if set, else a node the suite starts itself from Maven Central artifacts.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
