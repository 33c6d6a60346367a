#!/usr/bin/env bash
# Prepare a fresh checkout: a virtualenv in .venv with the project and its dev tools, and the Kafka jars.
# Needs Python 3.11+, JDK 17+ and Maven on PATH. Safe to run again (it only installs what changed).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY' || { echo "setup: Python 3.11+ is required (set PYTHON=/path/to/python3.11)" >&2; exit 2; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
command -v java >/dev/null || { echo "setup: no 'java' on PATH; install JDK 17+" >&2; exit 2; }
command -v mvn >/dev/null || { echo "setup: no 'mvn' on PATH; install Maven 3.8+" >&2; exit 2; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.refinery-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  touch "$stamp"
fi
.venv/bin/refinery-kafka fetch

# promtool (Debian's prometheus package) checks and unit-tests the alert rules (tests/deploy/test_alert_rules.py:
# skipped without it on a developer's machine, failed in CI).
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
      || echo "setup: could not install promtool (apt-get install prometheus failed)" >&2
  else
    echo "setup: no 'promtool' on PATH and no root to install it; the alert-rule tests will be skipped" \
      "(install Debian's 'prometheus' package, e.g. sudo apt-get install --no-install-recommends prometheus)" >&2
  fi
fi

# The C++ SDK (sdk/cpp; built and tested by tests/sdk_cpp/test_cpp_sdk.py: skipped without these on a developer's
# machine, failed in CI): CMake, a C++17 compiler, protoc, and Debian's librdkafka, protobuf and libcurl dev packages.
CPP_PACKAGES="cmake g++ make pkg-config protobuf-compiler libprotobuf-dev librdkafka-dev libcurl4-openssl-dev"
cpp_ready() {
  for tool in cmake c++ make pkg-config protoc; do command -v "$tool" >/dev/null || return 1; done
  pkg-config --exists rdkafka++ protobuf libcurl
}
if ! cpp_ready; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # shellcheck disable=SC2086  # the package list is meant to split
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $CPP_PACKAGES >/dev/null; } \
      || echo "setup: could not install the C++ SDK's build dependencies (apt-get install failed)" >&2
  else
    echo "setup: the C++ SDK's compiler, CMake, protoc or libraries are missing and there is no root to install them;" \
      "its tests will be skipped (Debian: sudo apt-get install --no-install-recommends $CPP_PACKAGES)" >&2
  fi
fi

# The catalog: Graphviz's `dot` lays out its lineage view (without it the view says what to install), and its
# page tests (tests/refinery/catalog/test_pages_browser.py) drive Debian's headless Chromium; both are skipped
# without them on a developer's machine and failed in CI.
CATALOG_PACKAGES=""
command -v dot >/dev/null || CATALOG_PACKAGES=" graphviz"
command -v chromium >/dev/null || CATALOG_PACKAGES="$CATALOG_PACKAGES chromium"
if [ -n "$CATALOG_PACKAGES" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # shellcheck disable=SC2086  # the package list is meant to split
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $CATALOG_PACKAGES >/dev/null; } \
      || echo "setup: could not install the catalog's$CATALOG_PACKAGES (apt-get install failed)" >&2
  else
    echo "setup: no root to install$CATALOG_PACKAGES for the catalog's lineage view and page tests" \
      "(Debian: sudo apt-get install --no-install-recommends$CATALOG_PACKAGES)" >&2
  fi
fi
