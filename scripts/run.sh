#!/usr/bin/env bash
# Set up and run the whole pipeline locally, without Docker: Kafka from its Maven jars, the schema
# registry, the workload route set, two Refinery workers, the catalog and the demo producer, each a
# background process with a pid file and a log in .run/stack/. Safe to run again (running services are
# left alone). Stop everything with scripts/stop.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/refinery-stack up
