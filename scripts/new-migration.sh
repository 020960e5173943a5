#!/usr/bin/env bash
# Autogenerate an Alembic revision from the models against a fresh SQLite database.
#   scripts/new-migration.sh "message"
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python - "$1" "$tmp/m.db" <<'PY'
import sys
from alembic import command
from safecity.platform.migrations import alembic_config
cfg = alembic_config(f"sqlite:///{sys.argv[2]}")
command.upgrade(cfg, "head")
command.revision(cfg, message=sys.argv[1], autogenerate=True)
PY
.venv/bin/ruff format -q src/safecity/migrations/versions
.venv/bin/ruff check -q --fix src/safecity/migrations/versions || true
