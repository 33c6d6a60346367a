#!/usr/bin/env bash
# Stop what scripts/run.sh started (the demo producer, catalog, workers, registry, then Kafka).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/refinery-stack down
