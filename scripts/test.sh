#!/usr/bin/env bash
# The test command behind `make test`. Prints the time of each stage.
#   1. ruff + mypy --strict
#   2. the whole suite on SQLite and the in-process bus (browser tests included)
#   3. with CI=true: every test marked `db` or `bus` again on PostgreSQL and NATS JetStream
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PYTHONDONTWRITEBYTECODE=1

stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "=== stage: $name"
  "$@"
  echo "=== stage: $name took $((SECONDS - start)) s"
}

stage "ruff" $BIN/ruff check src tests benchmarks
stage "ruff format --check" $BIN/ruff format --check src tests benchmarks
stage "mypy --strict" $BIN/mypy
stage "tests (SQLite, in-process bus)" $BIN/pytest -q
if [ "${CI:-}" = "true" ]; then
  stage "tests marked db/bus (PostgreSQL, NATS JetStream)" \
    env SAFECITY_TEST_SERVICES=1 $BIN/pytest -q -m "db or bus"
fi
