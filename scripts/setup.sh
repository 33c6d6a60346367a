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
# again when the package's build inputs change (setup.py compiles the worker's and the SDK's C fast paths)
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
  || [ refinery/routing/envelope_fast.c -nt "$stamp" ] || [ refinery/routing/route_fast.c -nt "$stamp" ] \
  || [ refinery/worker/write_fast.c -nt "$stamp" ] || [ refinery/include/fast_helpers.h -nt "$stamp" ] \
  || [ refinery/include/kafka_direct.h -nt "$stamp" ] \
  || [ producers/avro_encoder.c -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  touch "$stamp"
fi
.venv/bin/refinery-kafka fetch

# Debian packages some tests need: installed when run as root (CI, containers); elsewhere a line says what is
# missing and how to install it, and those tests are skipped (they fail in CI instead).
# debian_install WHAT PACKAGE...
debian_install() {
  local what=$1
  shift
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if { [ -n "${APT_UPDATED:-}" ] || apt-get update -qq; } \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
      APT_UPDATED=1
    else
      echo "setup: could not install $what (apt-get install $* failed)" >&2
    fi
  else
    echo "setup: $what missing and no root to install it; their tests will be skipped" \
      "(Debian: sudo apt-get install --no-install-recommends $*)" >&2
  fi
}

# promtool (Debian's prometheus package) checks and unit-tests the alert rules (tests/deploy/test_alert_rules.py).
if ! command -v promtool >/dev/null; then
  debian_install "promtool" prometheus
fi

# The C++ SDK (sdk/cpp; built and tested by tests/sdk_cpp/test_cpp_sdk.py): CMake, a C++17 compiler, protoc, and
# Debian's librdkafka, protobuf and libcurl dev packages.
CPP_PACKAGES="cmake g++ make pkg-config protobuf-compiler libprotobuf-dev librdkafka-dev libcurl4-openssl-dev"
cpp_ready() {
  for tool in cmake c++ make pkg-config protoc; do command -v "$tool" >/dev/null || return 1; done
  pkg-config --exists rdkafka++ protobuf libcurl
}
if ! cpp_ready; then
  # shellcheck disable=SC2086  # the package list is meant to split
  debian_install "the C++ SDK's compiler, CMake, protoc or libraries" $CPP_PACKAGES
fi

# The catalog: Graphviz's `dot` lays out its lineage view (without it the view says what to install), and its
# page tests (tests/refinery/catalog/test_pages_browser.py) drive Debian's headless Chromium.
CATALOG_PACKAGES=""
command -v dot >/dev/null || CATALOG_PACKAGES="graphviz"
command -v chromium >/dev/null || CATALOG_PACKAGES="$CATALOG_PACKAGES chromium"
if [ -n "$CATALOG_PACKAGES" ]; then
  # shellcheck disable=SC2086  # the package list is meant to split
  debian_install "the catalog's graphviz or chromium" $CATALOG_PACKAGES
fi
