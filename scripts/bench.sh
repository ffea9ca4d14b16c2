#!/usr/bin/env bash
# Benchmarks for the README. Usage: scripts/bench.sh [--quick]
#   - median wall time of `status`, `check`, `record` per invocation on each backend, next to
#     `tokenctl --version` (the cost of starting a process at all);
#   - the same `status`/`check` with 1,000 and with 1,000,000 rows in token_usage_logs (they
#     must not scan it: the ratio should stay near 1);
#   - reservations per second with 16 concurrent clients on PostgreSQL, next to pgbench running
#     one conditional UPDATE ... WHERE used + n <= limit on one row with 16 clients;
#   - (prune) `monthly-reset --prune-logs-older-than` over 10,000,000 old log rows on each
#     backend, next to a plain DELETE of the same rows in psql / sqlite3, on a quiet and on a
#     busy machine (CPU and disk loaded), and tokenctl's peak
#     memory at 1,000,000 and at 10,000,000 rows;
#   - (logs) `logs` pages (the first, one AI type's, the last 24 hours, one deep in the log)
#     with 1,000 and with 10,000,000 rows in token_usage_logs;
#   - (spread) `distribution` for a month with a full set of hourly rollups (8 AI types and the
#     total, every hour of November) and 1,000 or 10,000,000 rows in token_usage_logs;
#   - (report) `report --days 30` with 1,000 and with 10,000,000 requests by 100,000 users
#     (heavy-tailed: a few users make most requests) in the log and in the rollups `record`
#     keeps, and reservations per second in-process with and without a user scope;
#   - (serve) reservations per second and p50/p99 latency through `tokenctl serve` with 16 and
#     64 concurrent HTTP clients (benches/serve_load.rs), reserve + settle pairs too, the batch
#     sizes its group commit saw, next to the hot-row ceiling (pgbench, 16 clients; on SQLite
#     one process doing the same conditional UPDATE), the in-process path without batching and
#     the CLI's process per reservation.
# --against REV (with core): the same figures for the commit REV, built beside this one in a
# temporary worktree, each run alternating the two binaries, with the ratio new/old.
# PostgreSQL: TOKENCTL_BENCH_POSTGRES_URL (a server where CREATE DATABASE is allowed), default
# postgres://postgres@127.0.0.1:5432/postgres. Needs python3, psql, pgbench, sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0 PART=all AGAINST=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --against) AGAINST=${2:?--against needs a commit}; shift ;;
    core|prune|spread|logs|report|serve|all) PART=$1 ;;
    *) echo "usage: scripts/bench.sh [--quick] [--against REV] [core|prune|spread|logs|report|serve|all]" >&2; exit 2 ;;
  esac
  shift
done
ADMIN=${TOKENCTL_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
for tool in python3 psql pgbench sqlite3; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is needed (apt-get install postgresql-client postgresql-contrib sqlite3 python3)" >&2; exit 1; }
done
cargo build --release --locked -q
# the bench programs, built once here and run by path (cargo bench would rebuild them whenever
# the tree changes, in the middle of a measurement)
bench_exe() { # name
  cargo bench --locked --no-run --bench "$1" --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1"
}
RESERVE_THROUGHPUT=$(bench_exe reserve_throughput)
SERVE_LOAD=$(bench_exe serve_load)
BIN=$PWD/target/release/tokenctl
WORK=$(mktemp -d /tmp/tokenctl-bench.XXXXXX)
OLD= OLD_DIR=
if [ -n "$AGAINST" ]; then
  OLD_DIR=$PWD/target/against-src
  git worktree remove --force "$OLD_DIR" 2>/dev/null || rm -rf "$OLD_DIR"
  git worktree add -q --detach "$OLD_DIR" "$AGAINST"
  # its own target directory, kept between runs: only the first run builds it all
  export OLD_TARGET=$PWD/target/against
  (cd "$OLD_DIR" && CARGO_TARGET_DIR=$OLD_TARGET cargo build --release -q && CARGO_TARGET_DIR=$OLD_TARGET cargo bench --no-run -q --bench reserve_throughput 2>/dev/null)
  OLD=$OLD_TARGET/release/tokenctl
fi
DB=tokenctl_bench_$$
PGURL="${ADMIN%/*}/$DB"
cleanup() {
  if [ "${#LOAD_PIDS[@]}" -gt 0 ]; then kill "${LOAD_PIDS[@]}" 2>/dev/null || true; fi
  for d in $DB ${DB}_seed ${DB}_prune ${DB}_serve; do psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
  if [ -n "$OLD_DIR" ]; then git worktree remove --force "$OLD_DIR" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
LOAD_PIDS=()
trap cleanup EXIT
psql -q "$ADMIN" -c "CREATE DATABASE $DB" >/dev/null
SQLITE="sqlite://$WORK/bench.db"
export TOKENCTL_NOW=2026-11-23T10:00:00Z NO_COLOR=1
# psql: no NOTICE for a DROP … IF EXISTS of what is not there
export PGOPTIONS="-c client_min_messages=warning"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "tokenctl $($BIN --version | cut -d' ' -f2), $(psql -At "$ADMIN" -c 'show server_version') PostgreSQL, SQLite $(sqlite3 --version | cut -d' ' -f1)"

seed_logs() { # backend url rows
  local backend=$1 url=$2 rows=$3
  if [ "$backend" = sqlite ]; then
    sqlite3 "$WORK/bench.db" "DELETE FROM token_usage_logs;
      WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < $rows)
      INSERT INTO token_usage_logs (ai_type, model, tokens_in, tokens_out, total_tokens, cost_usd, success, created_at, month_year)
      SELECT 'agent-' || (x % 8), 'gpt-4o', 100, 50, 150, 0.001, 1,
             strftime('%Y-%m-%dT%H:%M:%fZ', '2026-11-01', '+' || (x % 1900000) || ' seconds'), '2026-11' FROM n;"
  else
    psql -q "$url" -c "TRUNCATE token_usage_logs" -c "INSERT INTO token_usage_logs (ai_type, model, tokens_in, tokens_out, total_tokens, cost_usd, success, created_at, month_year)
      SELECT 'agent-' || (x % 8), 'gpt-4o', 100, 50, 150, 0.001, true, timestamptz '2026-11-01' + x * interval '1 second', '2026-11'
      FROM generate_series(1, $rows) AS x" -c "VACUUM ANALYZE token_usage_logs" >/dev/null
  fi
}

# runs, then the command with BIN standing for the binary: the median of this build's runs,
# and with --against the median of the other build's, run alternately, then new/old
medians() {
  python3 - "$OLD" "$@" <<'PY'
import subprocess, sys, time, statistics
old, runs, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
bins = [cmd[0]] + ([old] if old else [])
times = {b: [] for b in bins}
for _ in range(runs):
    for b in bins:
        t = time.perf_counter()
        r = subprocess.run([b] + cmd[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[b].append((time.perf_counter() - t) * 1000)
        if r.returncode not in (0, 3):
            sys.exit(f"{[b] + cmd[1:]} exited {r.returncode}")
m = [statistics.median(times[b]) for b in bins]
print(f"{m[0]:.2f}" + (f" {m[1]:.2f} {m[0] / m[1]:.2f}" if old else ""))
PY
}

median() { # runs, then the command
  python3 - "$@" <<'PY'
import subprocess, sys, time, statistics
runs = int(sys.argv[1]); cmd = sys.argv[2:]
times = []
for _ in range(runs):
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times.append((time.perf_counter() - t) * 1000)
    if r.returncode not in (0, 3):
        sys.exit(f"{cmd} exited {r.returncode}")
print(f"{statistics.median(times):.2f}")
PY
}

# m VAR RUNS COMMAND…: VAR = this build's median (ms); with --against, AGAINST_COLS says the
# other build's and the ratio
m() { # variable, runs, command
  local var=$1 r; shift
  r=($(medians "$@"))
  printf -v "$var" %s "${r[0]}"
  AGAINST_COLS=
  if [ -n "$OLD" ]; then AGAINST_COLS="   ${r[1]} ms before: ${r[2]}x"; fi
}
line() { # label, median, what to compare it with
  printf '%-9s %-28s %10s  %-26s%s\n' $backend "$1" "$2" "$3" "$AGAINST_COLS"
}
per_process() { # binaries: reservations/s of each, 16 clients each running `tokenctl reserve`
# in a loop; with two binaries they take turns (four phases), so both see the same database
python3 - "$SECS" "$@" <<'PY'
import subprocess, sys, time, threading
secs, bins = float(sys.argv[1]), sys.argv[2:]
phases = 1 if len(bins) == 1 else 2
done = {b: 0 for b in bins}
spent = {b: 0.0 for b in bins}
for _ in range(phases):
    for bin in bins:
        count = [0] * 16
        end = time.perf_counter() + secs / phases
        def client(i):
            while time.perf_counter() < end:
                r = subprocess.run([bin, "reserve", "--ai-type", f"agent-{i % 4}", "--estimated-tokens", "10", "--ttl", "1h"], stdout=subprocess.DEVNULL)
                if r.returncode == 0:
                    count[i] += 1
        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        start = time.perf_counter()
        for t in threads: t.start()
        for t in threads: t.join()
        done[bin] += sum(count)
        spent[bin] += time.perf_counter() - start
print(" ".join(f"{done[b] / spent[b]:.0f}" for b in bins))
PY
}
run_core() {
RUNS=$([ $QUICK = 1 ] && echo 15 || echo 60)
BIG=$([ $QUICK = 1 ] && echo 200000 || echo 1000000)
printf '\n%-9s %-28s %10s\n' backend command "median ms"
for backend in sqlite postgres; do
  url=$([ $backend = sqlite ] && echo "$SQLITE" || echo "$PGURL")
  export TOKENCTL_DATABASE_URL=$url
  $BIN migrate >/dev/null
  for a in 0 1 2 3 4 5 6 7; do $BIN record --ai-type agent-$a --tokens-in 100 --tokens-out 50 >/dev/null; done
  seed_logs $backend "$url" 1000
  m v $RUNS $BIN --version; line "--version" "$v" ""
  m s1 $RUNS $BIN status; line "status (1k log rows)" "$s1" "($(python3 -c "print(f'{$s1/$v:.1f}')")x --version)"
  m c1 $RUNS $BIN check --ai-type agent-1 --estimated-tokens 500; line "check (1k log rows)" "$c1" "($(python3 -c "print(f'{$c1/$v:.1f}')")x --version)"
  m r1 $RUNS $BIN record --ai-type agent-2 --tokens-in 1 --tokens-out 1 --model gpt-4o; line "record" "$r1" "($(python3 -c "print(f'{$r1/$v:.1f}')")x --version)"
  seed_logs $backend "$url" $BIG
  m s2 $RUNS $BIN status; line "status ($BIG log rows)" "$s2" "($(python3 -c "print(f'{$s2/$s1:.2f}')")x the 1k figure)"
  m c2 $RUNS $BIN check --ai-type agent-1 --estimated-tokens 500; line "check ($BIG log rows)" "$c2" "($(python3 -c "print(f'{$c2/$c1:.2f}')")x the 1k figure)"
done

# Reservations per second, 16 clients, PostgreSQL: each client a loop of `tokenctl reserve`
# processes, each reservation released by the limit (none is ever denied for lack of room).
export TOKENCTL_DATABASE_URL=$PGURL
$BIN limits set --global --monthly 1000000000000 --daily 1000000000000 --hourly 1000000000000 --max-concurrent 0 --rpm 0 --rpd 0 >/dev/null
$BIN limits set --monthly 1000000000000 --daily 1000000000000 --hourly 1000000000000 --rpm 0 --rpd 0 >/dev/null
SECS=$([ $QUICK = 1 ] && echo 5 || echo 15)
in_process() { # this build's bench, or with `against` the other build's
  if [ "${1:-}" = against ]; then
    (cd "$OLD_DIR" && CARGO_TARGET_DIR=$OLD_TARGET cargo bench -q --bench reserve_throughput -- "$PGURL" "$SECS" 16 2>/dev/null | tail -n 1)
  else
    "$RESERVE_THROUGHPUT" "$PGURL" "$SECS" 16 2>/dev/null | tail -n 1
  fi
}
if [ -n "$OLD" ]; then
  read -r RES RES_OLD < <(per_process "$BIN" "$OLD")
  LIB=$(in_process)
  LIB_OLD=$(in_process against)
else
  RES=$(per_process "$BIN")
  LIB=$(in_process)
fi
psql -q "$PGURL" -c "CREATE TABLE bench_counter (id int PRIMARY KEY, used bigint NOT NULL, lim bigint NOT NULL)" -c "INSERT INTO bench_counter VALUES (1, 0, 9223372036854775000)" >/dev/null
echo 'UPDATE bench_counter SET used = used + 10 WHERE id = 1 AND used + 10 <= lim;' > "$WORK/update.sql"
PGB=$(pgbench -n -c 16 -j 2 -T "$SECS" -f "$WORK/update.sql" "$PGURL" 2>/dev/null | awk '/^tps/ {print int($3)}')
echo
echo "postgres  pgbench hot-row conditional UPDATE, 16 clients     $PGB tps (the ceiling)"
echo "postgres  reserve in-process, 16 connections                $LIB reservations/s ($(python3 -c "print(f'{$LIB/$PGB:.2f}')")x the ceiling)"
echo "postgres  tokenctl reserve, 16 clients, a process each      $RES reservations/s ($(python3 -c "print(f'{$RES/$PGB:.3f}')")x the ceiling)"
if [ -n "$OLD" ]; then
  echo "postgres  reserve in-process, before ($AGAINST)           $LIB_OLD reservations/s: now $(python3 -c "print(f'{$LIB/$LIB_OLD:.2f}')")x"
  echo "postgres  tokenctl reserve, a process each, before        $RES_OLD reservations/s: now $(python3 -c "print(f'{$RES/$RES_OLD:.2f}')")x"
fi
}

# Pruning: N log rows dated August 2026 (plus 1,000 recent ones that stay) are seeded once into
# a template; each contender gets a fresh copy of it (cp for SQLite, CREATE DATABASE … TEMPLATE
# for PostgreSQL). tokenctl prunes them (cutoff 2026-09-01) or one plain DELETE does, on a quiet
# machine and on a busy one: a CPU spinner per core and a writer doing synchronous 64 MB writes
# (so fsync waits too), started before and stopped after each timed command. Times, tokenctl's
# peak RSS (getrusage of the finished child) and the ratio.
seed_old_logs() { # backend url rows (url: the template's)
  local backend=$1 url=$2 rows=$3
  if [ "$backend" = sqlite ]; then
    rm -f "$WORK"/prune-seed.db*
    TOKENCTL_DATABASE_URL=$url $BIN migrate >/dev/null
    sqlite3 "$WORK/prune-seed.db" "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < $rows)
      INSERT INTO token_usage_logs (ai_type, model, tokens_in, tokens_out, total_tokens, cost_usd, success, created_at, month_year)
      SELECT 'agent-' || (x % 8), 'gpt-4o', 100, 50, 150, 0.001, 1,
             strftime('%Y-%m-%dT%H:%M:%fZ', '2026-08-01', '+' || (x % 2600000) || ' seconds'), '2026-08' FROM n;
      WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)
      INSERT INTO token_usage_logs (ai_type, tokens_in, tokens_out, total_tokens, created_at, month_year)
      SELECT 'recent', 1, 1, 2, strftime('%Y-%m-%dT%H:%M:%fZ', '2026-11-10', '+' || x || ' seconds'), '2026-11' FROM n;
      PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
  else
    psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS ${DB}_seed WITH (FORCE)" -c "CREATE DATABASE ${DB}_seed" >/dev/null
    TOKENCTL_DATABASE_URL=$url $BIN migrate >/dev/null
    psql -q "$url" -c "INSERT INTO token_usage_logs (ai_type, model, tokens_in, tokens_out, total_tokens, cost_usd, success, created_at, month_year)
          SELECT 'agent-' || (x % 8), 'gpt-4o', 100, 50, 150, 0.001, true, timestamptz '2026-08-01' + (x % 2600000) * interval '1 second', '2026-08'
          FROM generate_series(1, $rows) AS x" \
      -c "INSERT INTO token_usage_logs (ai_type, tokens_in, tokens_out, total_tokens, created_at, month_year)
          SELECT 'recent', 1, 1, 2, timestamptz '2026-11-10' + x * interval '1 second', '2026-11' FROM generate_series(1, 1000) AS x" \
      -c "VACUUM ANALYZE token_usage_logs" >/dev/null
  fi
}

fresh_copy() { # backend: a copy of the seeded template, for one contender
  if [ "$1" = sqlite ]; then
    rm -f "$WORK"/prune.db*
    cp "$WORK/prune-seed.db" "$WORK/prune.db"
  else
    local strategy=$([ "$(psql -At "$ADMIN" -c 'show server_version_num')" -ge 150000 ] && echo "STRATEGY FILE_COPY")
    psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS ${DB}_prune WITH (FORCE)" \
      -c "CREATE DATABASE ${DB}_prune TEMPLATE ${DB}_seed $strategy" -c CHECKPOINT >/dev/null
  fi
  sync
}

busy_start() {
  for _ in $(seq "$(nproc)"); do (while :; do :; done) & LOAD_PIDS+=($!); done
  (while :; do dd if=/dev/zero of="$WORK/load.bin" bs=1M count=64 oflag=dsync status=none; done) & LOAD_PIDS+=($!)
}
busy_stop() {
  kill "${LOAD_PIDS[@]}" 2>/dev/null || true
  wait "${LOAD_PIDS[@]}" 2>/dev/null || true
  LOAD_PIDS=()
  rm -f "$WORK/load.bin"
}

timed() { # prints "seconds max_rss_mb" of a command
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
if r.returncode != 0:
    sys.exit(f"{sys.argv[1:]} exited {r.returncode}")
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{time.perf_counter() - t:.1f} {rss:.1f}")
PY
}

prune_once() { # backend load(quiet|busy) who(tokenctl|plain): prints "seconds mb"
  local backend=$1 load=$2 who=$3
  local url=$([ "$backend" = sqlite ] && echo "sqlite://$WORK/prune.db" || echo "${ADMIN%/*}/${DB}_prune")
  fresh_copy "$backend"
  [ "$load" = busy ] && busy_start
  if [ "$who" = tokenctl ]; then
    TOKENCTL_NOW=2026-11-15T00:00:00Z TOKENCTL_DATABASE_URL=$url timed $BIN monthly-reset --prune-logs-older-than 2
  elif [ "$backend" = sqlite ]; then
    timed sqlite3 "$WORK/prune.db" "DELETE FROM token_usage_logs WHERE created_at < '2026-09-01T00:00:00.000000Z'"
  else
    timed psql -q "$url" -c "DELETE FROM token_usage_logs WHERE created_at < '2026-09-01T00:00:00Z'"
  fi
  [ "$load" = busy ] && busy_stop
  return 0
}

run_prune() {
  local big=$([ $QUICK = 1 ] && echo 1000000 || echo 10000000)
  printf '\n%-9s %-44s %9s %9s\n' backend "pruning (cutoff 2026-09-01)" seconds "peak MB"
  for backend in sqlite postgres; do
    local seed=$([ $backend = sqlite ] && echo "sqlite://$WORK/prune-seed.db" || echo "${ADMIN%/*}/${DB}_seed")
    if [ "$big" != 1000000 ]; then
      seed_old_logs $backend "$seed" 1000000
      read -r secs mb < <(prune_once $backend quiet tokenctl)
      printf '%-9s %-44s %9s %9s\n' $backend "tokenctl monthly-reset, 1000000 rows" "$secs" "$mb"
    fi
    seed_old_logs $backend "$seed" $big
    for load in quiet busy; do
      read -r secs mb < <(prune_once $backend $load tokenctl)
      read -r plain _ < <(prune_once $backend $load plain)
      printf '%-9s %-44s %9s %9s\n' $backend "tokenctl monthly-reset, $big rows, $load" "$secs" "$mb"
      printf '%-9s %-44s %9s %9s  (tokenctl: %sx)\n' $backend "plain DELETE, $big rows, $load" "$plain" "-" \
        "$(python3 -c "print(f'{$secs/$plain:.2f}')")"
    done
  done
}

seed_rollups() { # backend url: every hour and day of November 2026 for agent-0..7 and '*'
  local backend=$1 url=$2
  local sql="DELETE FROM token_usage_windows;
    INSERT INTO token_usage_windows (ai_type, period, month_year, tokens, requests)
    SELECT a.name, h.period, '2026-11', 100, 2 FROM
      (SELECT 'agent-0' AS name UNION ALL SELECT 'agent-1' UNION ALL SELECT 'agent-2' UNION ALL SELECT 'agent-3'
       UNION ALL SELECT 'agent-4' UNION ALL SELECT 'agent-5' UNION ALL SELECT 'agent-6' UNION ALL SELECT 'agent-7'
       UNION ALL SELECT '*') AS a,
      (SELECT DISTINCT substr(period, 1, 13) AS period FROM hours) AS h;
    INSERT INTO token_usage_windows (ai_type, period, month_year, tokens, requests)
    SELECT ai_type, substr(period, 1, 10), month_year, SUM(tokens), SUM(requests) FROM token_usage_windows GROUP BY 1, 2, 3;"
  if [ "$backend" = sqlite ]; then
    sqlite3 "$WORK/bench.db" "CREATE TEMP TABLE hours AS WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 719)
      SELECT strftime('%Y-%m-%dT%H', '2026-11-01', '+' || x || ' hours') AS period FROM n; $sql"
  else
    psql -q "$url" -c "CREATE TEMP TABLE hours AS SELECT to_char(timestamp '2026-11-01' + x * interval '1 hour', 'YYYY-MM-DD\"T\"HH24') AS period
      FROM generate_series(0, 719) AS x; $sql" >/dev/null
  fi
}

run_spread() {
  local big=$([ $QUICK = 1 ] && echo 1000000 || echo 10000000)
  local runs=$([ $QUICK = 1 ] && echo 15 || echo 40)
  printf '\n%-9s %-44s %10s\n' backend "distribution (full month of rollups)" "median ms"
  for backend in sqlite postgres; do
    local url=$([ $backend = sqlite ] && echo "$SQLITE" || echo "$PGURL")
    export TOKENCTL_DATABASE_URL=$url
    $BIN migrate >/dev/null
    seed_rollups $backend "$url"
    for rows in 1000 $big; do
      seed_logs $backend "$url" $rows
      ms=$(TOKENCTL_NOW=2026-11-30T12:00:00Z median $runs $BIN distribution --json)
      msa=$(TOKENCTL_NOW=2026-11-30T12:00:00Z median $runs $BIN distribution --ai-type agent-3 --json)
      printf '%-9s %-44s %10s\n' $backend "all AI types, $rows log rows" "$ms"
      printf '%-9s %-44s %10s\n' $backend "one AI type, $rows log rows" "$msa"
    done
  done
}

# logs: the first page, one AI type's first page, the last day, and a page deep in the log
# (--before an early id), with 1,000 and with 10,000,000 rows: keyset pages must not slow down
# with the size of the log.
run_logs() {
  local big=$([ $QUICK = 1 ] && echo 1000000 || echo 10000000)
  local runs=$([ $QUICK = 1 ] && echo 15 || echo 40)
  printf '\n%-9s %-44s %10s %10s\n' backend "logs (20 rows a page)" "median ms" "1k rows"
  for backend in sqlite postgres; do
    local url=$([ $backend = sqlite ] && echo "$SQLITE" || echo "$PGURL")
    export TOKENCTL_DATABASE_URL=$url
    $BIN migrate >/dev/null
    declare -A small=()
    for rows in 1000 $big; do
      seed_logs $backend "$url" $rows
      local deep=$((rows / 10))
      for page in "first page:" "one AI type:--ai-type agent-3" "last 24 hours:--since 24h" "a page deep in the log:--before $deep"; do
        local name=${page%%:*} flags=${page#*:}
        # shellcheck disable=SC2086
        local ms=$(median $runs $BIN logs -n 20 --json $flags)
        if [ "$rows" = 1000 ]; then
          small[$name]=$ms
        else
          printf '%-9s %-44s %10s %10s  (%sx)\n' $backend "$name, $rows rows" "$ms" "${small[$name]}" \
            "$(python3 -c "print(f'{$ms/${small[$name]}:.2f}')")"
        fi
      done
    done
  done
}

# report: ROWS requests over the 120 days to 2026-11-30 by users drawn from 100,000 with a
# heavy tail (100,000 x u^3 for a uniform u: the busiest 1% make a fifth of the requests,
# user-0 the most), 8 AI types and 4
# priced models, written to the log and to every rollup `record` keeps (as record would
# write them, in bulk). A report reads the rollups only, so it must not slow down with them.
seed_requests() { # backend url rows
  local backend=$1 url=$2 rows=$3
  local models="CASE m WHEN 0 THEN 'gpt-4o' WHEN 1 THEN 'claude-sonnet-4-5' WHEN 2 THEN 'gpt-4o-mini' ELSE 'claude-haiku-4-5' END"
  local cost="tin * CASE m WHEN 0 THEN 2500 WHEN 1 THEN 3000 WHEN 2 THEN 150 ELSE 1000 END
              + tout * CASE m WHEN 0 THEN 10000 WHEN 1 THEN 15000 WHEN 2 THEN 600 ELSE 5000 END"
  local clear="DELETE FROM token_usage_logs; DELETE FROM token_usage_daily; DELETE FROM token_usage_daily_models;
    DELETE FROM token_user_usage; DELETE FROM token_day_users; DELETE FROM token_users; DELETE FROM token_last_days;"
  local rollups="
    INSERT INTO token_usage_logs (ai_type, model, tokens_in, tokens_out, total_tokens, cost_usd, cost_nanos, user_id,
                                  success, created_at, month_year)
      SELECT ai_type, model, tin, tout, tin + tout, cost / 1e9, cost, user_id, $([ $backend = sqlite ] && echo 1 || echo true),
             $([ $backend = sqlite ] && echo "day || 'T12:00:00.000000Z'" || echo "(day || 'T12:00:00Z')::timestamptz"), substr(day, 1, 7)
      FROM gen;
    INSERT INTO token_usage_daily (day, ai_type, user_id, model, requests, tokens_in, tokens_out, total_tokens, cost_nanos)
      SELECT day, ai_type, user_id, model, COUNT(*), SUM(tin), SUM(tout), SUM(tin + tout), SUM(cost) FROM gen GROUP BY 1, 2, 3, 4;
    INSERT INTO token_usage_daily_models (day, ai_type, model, requests, tokens_in, tokens_out, total_tokens, cost_nanos)
      SELECT day, ai_type, model, SUM(requests), SUM(tokens_in), SUM(tokens_out), SUM(total_tokens), SUM(cost_nanos)
      FROM token_usage_daily GROUP BY 1, 2, 3;
    INSERT INTO token_user_usage (user_id, period, month_year, tokens, requests, cost_nanos)
      SELECT user_id, day, substr(day, 1, 7), SUM(total_tokens), SUM(requests), SUM(cost_nanos) FROM token_usage_daily GROUP BY 1, 2;
    INSERT INTO token_user_usage (user_id, period, month_year, tokens, requests, cost_nanos)
      SELECT user_id, month_year, month_year, SUM(tokens), SUM(requests), SUM(cost_nanos) FROM token_user_usage GROUP BY 1, 2;
    INSERT INTO token_day_users (day, users) SELECT period, COUNT(*) FROM token_user_usage WHERE length(period) = 10 GROUP BY 1;
    INSERT INTO token_users (user_id, last_day) SELECT user_id, MAX(period) FROM token_user_usage WHERE length(period) = 10 GROUP BY 1;
    INSERT INTO token_last_days (day, users) SELECT last_day, COUNT(*) FROM token_users GROUP BY 1;"
  if [ "$backend" = sqlite ]; then
    sqlite3 "$WORK/bench.db" "$clear
      CREATE TEMP TABLE gen AS
        WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < $rows),
        r AS (SELECT x, abs(random()) % 100000 AS r FROM n),
        drawn AS (SELECT x, x % 4 AS m, 100 + x % 900 AS tin, 50 + x % 450 AS tout, r * r / 100000 * r / 100000 AS u FROM r)
        SELECT date('2026-11-30', '-' || (x % 120) || ' days') AS day, 'agent-' || (x % 8) AS ai_type,
               'user-' || u AS user_id, $models AS model, tin, tout, $cost AS cost
        FROM drawn;
      $rollups"
  else
    psql -q "$url" -c "$clear" -c "CREATE TEMP TABLE gen AS
        SELECT to_char(date '2026-11-30' - (x % 120), 'YYYY-MM-DD') AS day, 'agent-' || (x % 8) AS ai_type,
               'user-' || floor(100000 * power(random(), 3))::int AS user_id, $models AS model, tin, tout, ($cost)::bigint AS cost
        FROM (SELECT x, x % 4 AS m, 100 + x % 900 AS tin, 50 + x % 450 AS tout FROM generate_series(1, $rows) AS x) AS drawn;
      $rollups" -c "VACUUM ANALYZE" >/dev/null
  fi
}

run_report() {
  local big=$([ $QUICK = 1 ] && echo 1000000 || echo 10000000)
  local runs=$([ $QUICK = 1 ] && echo 15 || echo 40)
  local secs=$([ $QUICK = 1 ] && echo 5 || echo 15)
  printf '
%-9s %-52s %10s
' backend "report --days 30 (rollups of ROWS requests)" "median ms"
  for backend in sqlite postgres; do
    local url=$([ $backend = sqlite ] && echo "$SQLITE" || echo "$PGURL")
    export TOKENCTL_DATABASE_URL=$url
    $BIN migrate >/dev/null
    local small_json= small_text=
    for rows in 1000 $big; do
      seed_requests $backend "$url" $rows
      local users=$(TOKENCTL_NOW=2026-11-30T12:00:00Z $BIN report --days 30 --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["totals"]["unique_users"])')
      local json=$(TOKENCTL_NOW=2026-11-30T12:00:00Z median $runs $BIN report --days 30 --json)
      local text=$(TOKENCTL_NOW=2026-11-30T12:00:00Z median $runs $BIN report --days 30)
      if [ "$rows" = 1000 ]; then
        small_json=$json small_text=$text
        printf '%-9s %-52s %10s
' $backend "--json, $rows requests ($users users in 30 days)" "$json"
        printf '%-9s %-52s %10s
' $backend "table, $rows requests" "$text"
      else
        printf '%-9s %-52s %10s  (%sx the 1,000 figure)
' $backend "--json, $rows requests ($users users in 30 days)" "$json" \
          "$(python3 -c "print(f'{$json/$small_json:.2f}')")"
        printf '%-9s %-52s %10s  (%sx)
' $backend "table, $rows requests" "$text" "$(python3 -c "print(f'{$text/$small_text:.2f}')")"
      fi
    done
  done
  # reserve with a user scope next to without, in-process (no process start to hide it), on
  # the database that has the 100,000 users' rows
  export TOKENCTL_DATABASE_URL=$PGURL
  $BIN limits set --global --monthly 1000000000000 --daily 1000000000000 --hourly 1000000000000 --max-concurrent 0 --rpm 0 --rpd 0 >/dev/null
  $BIN limits set --monthly 1000000000000 --daily 1000000000000 --hourly 1000000000000 --rpm 0 --rpd 0 >/dev/null
  $BIN limits set --default-user --daily-cost-usd 1000000 --monthly 1000000000000 >/dev/null
  local without=$("$RESERVE_THROUGHPUT" "$PGURL" "$secs" 16 2>/dev/null | tail -n 1)
  local with=$("$RESERVE_THROUGHPUT" "$PGURL" "$secs" 16 100000 2>/dev/null | tail -n 1)
  local again=$("$RESERVE_THROUGHPUT" "$PGURL" "$secs" 16 2>/dev/null | tail -n 1)
  echo "postgres  reserve in-process, 16 connections, no user          $without / $again reservations/s (before / after)"
  echo "postgres  the same, each for one of 100,000 users (USD limit)    $with reservations/s ($(python3 -c "print(f'{($without + $again) / 2 / $with:.2f}' if $with else 'n/a')")x slower)"
}

# serve: one `tokenctl serve` per backend on a free port, limits that never deny, loaded by
# benches/serve_load.rs (CLIENTS threads with keep-alive connections) for SECS each
run_serve() {
SECS=$([ $QUICK = 1 ] && echo 5 || echo 15)
# the real clock, as a deployment has it (and as the in-process bench reads it): holds made
# at a pinned instant would all expire at once under the real one
unset TOKENCTL_NOW
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
load() { # base token clients mode
  "$SERVE_LOAD" "$1" "$2" "$3" "$SECS" "$4" 2>/dev/null | tail -n 1
}
batches() { # base token: "mean max" batch size seen since the server started
  curl -s -H "Authorization: Bearer $2" "$1/metrics" | python3 -c '
import sys
s = c = 0.0; top = 0.0; last = 0
for line in sys.stdin:
    if line.startswith("tokenctl_admission_batch_size_sum"): s = float(line.split()[-1])
    elif line.startswith("tokenctl_admission_batch_size_count"): c = float(line.split()[-1])
    elif line.startswith("tokenctl_admission_batch_size_bucket"):
        le = line.split("le=\"")[1].split("\"")[0]; n = float(line.split()[-1])
        if n > last and le != "+Inf": top = float(le)
        last = max(last, n)
print(f"{s / c if c else 0:.1f} {top:.0f}")'
}
printf '\n%-9s %-52s %s\n' backend "admission through tokenctl serve" "figures"
for backend in postgres sqlite; do
  if [ $backend = postgres ]; then
    psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS ${DB}_serve WITH (FORCE)" -c "CREATE DATABASE ${DB}_serve" >/dev/null
    url="${ADMIN%/*}/${DB}_serve"
    psql -q "$url" -c "CREATE TABLE bench_counter (id int PRIMARY KEY, used bigint NOT NULL, lim bigint NOT NULL)" -c "INSERT INTO bench_counter VALUES (1, 0, 9223372036854775000)" >/dev/null
    echo 'UPDATE bench_counter SET used = used + 10 WHERE id = 1 AND used + 10 <= lim;' > "$WORK/update.sql"
    CEIL=$(pgbench -n -c 16 -j 2 -T "$SECS" -f "$WORK/update.sql" "$url" 2>/dev/null | awk '/^tps/ {print int($3)}')
    CEIL_WHAT="pgbench hot-row conditional UPDATE, 16 clients"
  else
    rm -f "$WORK"/serve.db*
    url="sqlite://$WORK/serve.db"
    CEIL=$(python3 - "$WORK/serve-ceiling.db" "$SECS" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS c (id INTEGER PRIMARY KEY, used INTEGER, lim INTEGER)")
db.execute("INSERT OR REPLACE INTO c VALUES (1, 0, 9223372036854775000)")
n, end = 0, time.perf_counter() + float(sys.argv[2])
start = time.perf_counter()
while time.perf_counter() < end:
    db.execute("BEGIN IMMEDIATE"); db.execute("UPDATE c SET used = used + 10 WHERE id = 1 AND used + 10 <= lim"); db.execute("COMMIT")
    n += 1
print(int(n / (time.perf_counter() - start)))
PY
)
    CEIL_WHAT="one process: BEGIN IMMEDIATE; conditional UPDATE; COMMIT"
  fi
  export TOKENCTL_DATABASE_URL=$url
  $BIN migrate >/dev/null
  $BIN limits set --global --monthly 1000000000000 --daily 1000000000000 --hourly 1000000000000 --max-concurrent 0 --rpm 0 --rpd 0 >/dev/null
  $BIN limits set --monthly 1000000000000 --daily 1000000000000 --hourly 1000000000000 --per-request 1000000 --rpm 0 --rpd 0 >/dev/null
  TOKEN=$($BIN tokens create --name bench --scope admit 2>/dev/null)
  PORT=$(free_port)
  BASE=http://127.0.0.1:$PORT
  $BIN serve --listen 127.0.0.1:$PORT --connections 16 2>/dev/null &
  SERVE_PID=$!
  LOAD_PIDS+=($SERVE_PID)
  for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  ratio() { python3 -c "print(f'{$1/$CEIL:.2f}')"; }
  printf '%-9s %-52s %s tps (the ceiling)\n' $backend "$CEIL_WHAT" "$CEIL"
  for clients in 16 64; do
    read -r rate p50 p99 denied < <(load "$BASE" "$TOKEN" $clients reserve)
    printf '%-9s %-52s %s reservations/s (%sx the ceiling), p50 %s ms, p99 %s ms\n' $backend "serve: reserve, $clients HTTP clients" "$rate" "$(ratio "$rate")" "$p50" "$p99"
  done
  read -r rate p50 p99 denied < <(load "$BASE" "$TOKEN" 64 pair)
  printf '%-9s %-52s %s pairs/s, p50 %s ms, p99 %s ms (each request)\n' $backend "serve: reserve + settle, 64 HTTP clients" "$rate" "$p50" "$p99"
  read -r mean top < <(batches "$BASE" "$TOKEN")
  printf '%-9s %-52s mean %s, largest bucket %s\n' $backend "serve: reservations decided per transaction" "$mean" "$top"
  kill -TERM $SERVE_PID; wait $SERVE_PID 2>/dev/null || true
  LIB=$("$RESERVE_THROUGHPUT" "$url" "$SECS" 16 2>/dev/null | tail -n 1)
  printf '%-9s %-52s %s reservations/s (%sx the ceiling)\n' $backend "in-process, one transaction each, 16 tasks" "$LIB" "$(ratio "$LIB")"
  CLI=$(per_process "$BIN")
  printf '%-9s %-52s %s reservations/s (%sx the ceiling)\n' $backend "tokenctl reserve, a process each, 16 clients" "$CLI" "$(ratio "$CLI")"
done
}

case $PART in
  core) run_core ;;
  logs) run_logs ;;
  report) run_report ;;
  prune) run_prune ;;
  spread) run_spread ;;
  serve) run_serve ;;
  all) run_core; run_prune; run_spread; run_logs; run_report; run_serve ;;
esac
