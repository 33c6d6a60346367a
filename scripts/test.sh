#!/usr/bin/env bash
# The whole test suite, as CI runs it: install, lint, type-check, then pytest against a real Kafka broker
# that the session fixture starts from the Maven jars (or reuses, if one answers on the bootstrap address).
# The C++ SDK is built (CMake, sdk/cpp/build) and its ctest suite run by tests/sdk_cpp/test_cpp_sdk.py, with the
# session's broker and schema registry in its environment.
# Extra arguments go to pytest, e.g. scripts/test.sh -k routing
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# pytest exits 5 when it collected no tests: with `set -e` that, like any failure, fails the run.
.venv/bin/python -m pytest "$@"
