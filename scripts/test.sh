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
if [ $# -eq 0 ] && command -v docker >/dev/null && command -v go >/dev/null; then
  mkdir -p .run
  setsid nice -n 19 .venv/bin/python -m tests.deploy.compose_plugin >.run/compose-plugin.log 2>&1 &
  compose_build=$!
  trap 'kill -- "-$compose_build" 2>/dev/null || true' EXIT  # the build's go processes too
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# pytest exits 5 when it collected no tests: with `set -e` that, like any failure, fails the run.
.venv/bin/python -m pytest "$@"
