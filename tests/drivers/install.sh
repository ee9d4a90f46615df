#!/usr/bin/env bash
# Installs the client drivers the driver matrix (tests/integration/tests/drivers.rs)
# runs: Python drivers in tests/drivers/.venv, Node drivers in
# tests/drivers/node/node_modules (from the committed package-lock.json), and
# pgJDBC + a JDK from Debian. Idempotent and quiet: skips what is present.
# Set SHARDGATE_DRIVERS_NO_APT=1 to skip the apt step (e.g. without root).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log() { echo "drivers/install.sh: $*"; }

# --- Python: psycopg 3, psycopg2, asyncpg, SQLAlchemy 2 -----------------------
venv="$here/.venv"
py_reqs=("psycopg[binary]>=3.1" "psycopg2-binary" "asyncpg" "SQLAlchemy>=2")
if ! "$venv/bin/python" -c 'import psycopg, psycopg2, asyncpg, sqlalchemy; assert int(sqlalchemy.__version__.split(".")[0]) >= 2' 2>/dev/null; then
  log "creating Python venv $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${py_reqs[@]}"
fi

# --- Node: pg, postgres, pg-copy-streams -------------------------------------
node_dir="$here/node"
if ! (cd "$node_dir" && node -e 'require("pg"); require("postgres"); require("pg-copy-streams")') 2>/dev/null; then
  command -v npm >/dev/null || { log "npm is missing (apt-get install nodejs npm)"; exit 1; }
  log "installing Node packages in $node_dir"
  (cd "$node_dir" && npm ci --silent --no-audit --no-fund >/dev/null)
fi

# --- Java: a JDK and pgJDBC ----------------------------------------------------
if [ "${SHARDGATE_DRIVERS_NO_APT:-}" != 1 ]; then
  missing=()
  command -v javac >/dev/null || missing+=(default-jdk-headless)
  [ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
