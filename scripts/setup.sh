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
