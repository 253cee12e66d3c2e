#!/usr/bin/env bash
# Create .venv and install the project with its test dependencies (idempotent: a rerun only checks).
# torch: the CPU wheel from ../shared/wheels when that folder exists, else pip's usual source.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if [ -d ../shared/wheels ]; then
  python -m pip install -q --find-links ../shared/wheels torch==2.13.0
fi
python -m pip install -q -e ".[dev]"
# The comparison page's browser test drives Debian's Chromium (no download at test time).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }
  else
    echo "warning: chromium and chromium-driver are missing; the browser test will fail (apt-get install chromium chromium-driver)" >&2
  fi
fi
command -v mvn >/dev/null || echo "warning: Maven (mvn) is missing; the local OpenSearch node cannot be fetched (apt-get install maven)" >&2
