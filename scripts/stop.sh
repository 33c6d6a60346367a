#!/usr/bin/env bash
# Stop what scripts/run.sh started.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/refinery-kafka stop
