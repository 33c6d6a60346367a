#!/usr/bin/env bash
# The whole test suite, as CI runs it: install, lint, type-check, then pytest against a real Kafka broker
# that the session fixture starts from the Maven jars (or reuses, if one answers on the bootstrap address).
# The C++ SDK is built (CMake, sdk/cpp/build) and its ctest suite run by tests/sdk_cpp/test_cpp_sdk.py, with the
# session's broker and schema registry in its environment.
# Extra arguments go to pytest, e.g. scripts/test.sh -k routing
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The compose check (tests/deploy/test_compose.py) needs a `docker compose` plugin that a fresh machine builds
# from the Go module proxy (~2 minutes of both cores). For a full run, build it in the background at the lowest
# priority while the rest runs; those tests are collected last and wait for it (the build holds a lock).
background=()  # process groups to end when this script ends, however it ends
trap 'for group in "${background[@]}"; do kill -- "-$group" 2>/dev/null || true; done' EXIT
if [ $# -eq 0 ] && command -v docker >/dev/null && command -v go >/dev/null; then
  mkdir -p .run
  setsid nice -n 19 .venv/bin/python -m tests.deploy.compose_plugin >.run/compose-plugin.log 2>&1 &
  background+=($!)  # the build's go processes too
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# pytest exits 5 when it collected no tests: with `set -e` that, like any failure, fails the run.
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
# A full run has two lanes, two pytest processes: the 3-node cluster tests, which start brokers of their own
# on free ports, in the background, beside everything else, which shares one broker (some of it stops and
# restarts it) and runs in order. The cluster lane's report follows the other's; either failing fails the run.
# (Not pytest-xdist's --dist loadgroup: with pytest 9.2 it ignores the groups, pytest-dev/pytest-xdist#1386.)
cluster_lane=tests/reliability/cluster
mkdir -p .run
setsid .venv/bin/python -m pytest "$cluster_lane" -p no:cacheprovider --basetemp=.run/pytest-cluster-lane \
  >.run/pytest-cluster-lane.log 2>&1 &
cluster_pid=$!
background+=("$cluster_pid")
shared_status=0
.venv/bin/python -m pytest --ignore="$cluster_lane" || shared_status=$?
cluster_status=0
wait "$cluster_pid" || cluster_status=$?
echo "================ the cluster lane: pytest $cluster_lane (exit $cluster_status) ================"
cat .run/pytest-cluster-lane.log
echo "lanes: everything else exit $shared_status, $cluster_lane exit $cluster_status"
[ "$shared_status" -eq 0 ] && [ "$cluster_status" -eq 0 ]
