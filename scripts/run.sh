#!/usr/bin/env bash
# Set up and run the pipeline locally, without Docker: Kafka from its Maven jars, then a round trip.
# Stop everything with scripts/stop.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/refinery-kafka start
.venv/bin/python -m common.smoke
