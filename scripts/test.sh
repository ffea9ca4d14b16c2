#!/usr/bin/env bash
# The test command: unit tests and the integration tests in tests/, which run the real
# binary against SQLite and PostgreSQL. PostgreSQL is found, not assumed:
#   1. TOKENCTL_TEST_POSTGRES_URL, if set (a URL to any database on a server where the user
#      may CREATE DATABASE; each test creates and drops its own);
#   2. else the local server at 127.0.0.1:5432 (user postgres);
#   3. else a throwaway cluster started here with initdb/pg_ctl, installing Debian's
#      postgresql package first if needed. It is stopped and deleted on exit.
# Debian's faketime, bsdutils (script), chromium and chromium-driver are installed when missing
# (tests need them: tests/dashboard.rs drives the dashboard in headless Chromium), and a
# Python venv with the HTTP client tests' packages is made under target/py-venv (see below).
# Extra arguments go to `cargo test` (e.g. scripts/test.sh --test core).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

start_throwaway_cluster() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    log "no PostgreSQL server found: installing Debian's postgresql package"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  PG_TMP=$(mktemp -d /tmp/tokenctl-pg.XXXXXX)
  local port=55432
  while port_open 127.0.0.1 "$port"; do port=$((port + 1)); done
  # initdb refuses to run as root: run the cluster as the postgres system user then
  local as=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home "$PG_TMP" postgres
    chown postgres "$PG_TMP"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bindir/initdb" -D "$PG_TMP/data" --auth=trust --username=postgres -E UTF8 >/dev/null
  "${as[@]}" "$bindir/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$PG_TMP -c max_connections=200 -c fsync=off" start >/dev/null
  PG_STOP=("${as[@]}" "$bindir/pg_ctl" -D "$PG_TMP/data" -m immediate stop)
  trap 'if [ -n "${PG_STOP:-}" ]; then "${PG_STOP[@]}" >/dev/null 2>&1 || true; fi; rm -rf "$PG_TMP"' EXIT
  export TOKENCTL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  log "started a throwaway PostgreSQL at 127.0.0.1:$port"
}

if [ -n "${TOKENCTL_TEST_POSTGRES_URL:-}" ]; then
  log "PostgreSQL from TOKENCTL_TEST_POSTGRES_URL"
elif port_open 127.0.0.1 5432; then
  export TOKENCTL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
  log "PostgreSQL at 127.0.0.1:5432"
else
  start_throwaway_cluster
fi

command -v cargo >/dev/null || { log "cargo is not installed (https://rustup.rs)"; exit 1; }
# The two-clock test runs hosts whose clocks really differ (libfaketime); the views tests run
# tokenctl on a real pseudo-terminal with util-linux's `script` (Debian: bsdutils); the
# dashboard tests drive /usr/bin/chromium through /usr/bin/chromedriver
missing=()
command -v faketime >/dev/null || missing+=(faketime)
command -v script >/dev/null || missing+=(bsdutils)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian's ${missing[*]} (for the two-clock, terminal and dashboard tests)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The HTTP client tests (tests/serve_clients.rs) drive `tokenctl serve` from Python: httpx (the
# README's example), prometheus-client and schemathesis, pinned in tests/python/requirements.txt,
# in a venv of their own under target/. It is made once and again only when the requirements
# change (a stamp holds their hash), so a run that has it costs nothing.
setup_python_venv() {
  local venv=target/py-venv req=tests/python/requirements.txt
  local want have=""
  mkdir -p target
  # two runs at once (another checkout's, say) take turns rather than build one venv together
  exec 9>target/py-venv.lock
  command -v flock >/dev/null && flock 9
  want=$(sha256sum "$req" | cut -d' ' -f1)
  [ -f "$venv/.requirements.sha256" ] && have=$(cat "$venv/.requirements.sha256")
  if [ "$want" = "$have" ] && [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import httpx, prometheus_client, schemathesis' 2>/dev/null; then
    exec 9>&-
    return 0
  fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1 \
     || ! python3 -c 'import ensurepip' 2>/dev/null; then
    log "installing Debian's python3-venv (for the HTTP client tests)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  log "making the Python venv for the HTTP client tests ($venv)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$venv/.requirements.sha256"
  exec 9>&-
}
setup_python_venv
TOKENCTL_TEST_PYTHON="$PWD/target/py-venv/bin/python"
export TOKENCTL_TEST_PYTHON

log=$(mktemp)
status=0
cargo test --locked "$@" 2>&1 | tee "$log" || status=$?
# one closing line over every test binary
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit $status
