#!/usr/bin/env bash
# Regenerates docs/dashboard.png, the README's picture of the dashboard: a `tokenctl serve` on a
# free loopback port with a throwaway SQLite database, realistic usage recorded into it at a fixed
# clock (several AI types, users and models, one AI type past its warning level, the alert
# `tokenctl monitor --once` raises for it), a read token, and the page signed in with that token
# in headless Chromium driven through chromedriver (WebDriver over python3's urllib: the token is
# typed into the page's form, never put in a URL), 1280 pixels wide, the whole page.
# Needs cargo, python3 and Debian's chromium and chromium-driver (installed when missing).
# Honours CARGO_TARGET_DIR. Usage: scripts/screenshot.sh [OUTPUT.png]
set -euo pipefail
[ -n "${SCREENSHOT_DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."

log() { printf 'screenshot.sh: %s\n' "$*" >&2; }

out=${1:-docs/dashboard.png}
command -v cargo >/dev/null || { log "cargo is not installed (https://rustup.rs)"; exit 1; }
command -v python3 >/dev/null || { log "python3 is needed (Debian: apt-get install python3)"; exit 1; }
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  log "installing Debian's chromium and chromium-driver"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

cargo build --quiet --locked --bin tokenctl
tokenctl="${CARGO_TARGET_DIR:-target}/debug/tokenctl"

tmp=$(mktemp -d /tmp/tokenctl-screenshot.XXXXXX)
serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# this database and clock only, nothing from the caller's environment
unset DATABASE_URL TOKENCTL_TZ PGPASSWORD
export TOKENCTL_DATABASE_URL="sqlite://$tmp/tokenctl.db"
export XDG_DATA_HOME="$tmp/xdg" NO_COLOR=1 LANG=en_US.UTF-8
NOW=2026-11-23T15:40:00Z
t() { TOKENCTL_NOW="$NOW" "$tokenctl" "$@" >/dev/null; }
# `at TIME tokenctl-args…`: a command run as if at TIME
at() { local when=$1; shift; TOKENCTL_NOW="$when" "$tokenctl" "$@" >/dev/null; }

log "recording usage into $TOKENCTL_DATABASE_URL"
t limits set --global --monthly 6000000
t limits set --ai-type support-bot --monthly 3000000
t limits set --ai-type summarizer --monthly 600000
t limits set --ai-type code-review --monthly 1500000
t limits set --ai-type triage --monthly 400000

# From October 20 to November 23: each AI type a few requests a day, for a few users. The
# numbers come from bash's RANDOM with a fixed seed: every run draws the same picture.
RANDOM=2026
users=(alice bob chen dana emil)
n=0
record() { # ai-type model day hour tokens-in tokens-out
  local user=${users[$((RANDOM % ${#users[@]}))]}
  n=$((n + 1))
  at "$3T$(printf %02d "$4"):$(printf %02d $((RANDOM % 60))):00Z" record --ai-type "$1" --model "$2" \
    --tokens-in "$5" --tokens-out "$6" --user-id "$user" --request-id "shot-$n" \
    --request-type chat --duration-ms $((800 + RANDOM % 4000))
}
days=()
for d in $(seq 20 31); do days+=("2026-10-$d"); done
for d in $(seq 1 23); do days+=("2026-11-$(printf %02d "$d")"); done
for day in "${days[@]}"; do
  last=16
  [ "$day" = 2026-11-23 ] && last=15
  for h in 9 11 14; do
    [ "$h" -le "$last" ] || continue
    record support-bot claude-sonnet-4-5 "$day" "$h" $((22000 + RANDOM % 12000)) $((3000 + RANDOM % 3000))
  done
  for h in 10 15; do
    [ "$h" -le "$last" ] || continue
    record summarizer claude-haiku-4-5 "$day" "$h" $((9000 + RANDOM % 2500)) $((900 + RANDOM % 600))
  done
  record code-review gpt-4.1 "$day" 13 $((18000 + RANDOM % 9000)) $((2500 + RANDOM % 2500))
  if [ $((RANDOM % 3)) = 0 ]; then
    record triage gpt-4.1-mini "$day" 12 $((3000 + RANDOM % 2000)) $((200 + RANDOM % 300))
  fi
done
log "$n requests recorded"
# one request in flight: its estimate is held against the limits
t limits set --ai-type support-bot --hourly 200000 --daily 400000 --per-request 50000
t limits set --global --hourly 400000 --daily 800000 --per-request 50000
t reserve --ai-type support-bot --estimated-tokens 30000
# the monitor raises the alerts (summarizer past 80 % of its month)
t monitor --once --alerts-file "$tmp/alerts.json"
secret=$(TOKENCTL_NOW="$NOW" "$tokenctl" tokens create --name screenshot --scope read)

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TOKENCTL_NOW="$NOW" "$tokenctl" serve --listen "127.0.0.1:$port" >/dev/null 2>"$tmp/serve.log" &
serve_pid=$!

mkdir -p "$(dirname "$out")"
SECRET="$secret" python3 - "http://127.0.0.1:$port/" "$out" <<'PY'
import base64, json, os, socket, subprocess, sys, time, urllib.error, urllib.request

page, out = sys.argv[1], sys.argv[2]
WIDTH = 1280


def wait(what, check, within=30):
    started = time.time()
    while True:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError):
            pass
        if time.time() - started > within:
            sys.exit(f"screenshot.sh: {what}")
        time.sleep(0.1)


def ok(url):
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200


wait("tokenctl serve did not start", lambda: ok(page + "healthz"))

s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
driver = subprocess.Popen(["/usr/bin/chromedriver", f"--port={port}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env=dict(os.environ, LANG="en_US.UTF-8"))
base = f"http://127.0.0.1:{port}"
session = None


def send(method, path, body=None):
    """One WebDriver command; its value."""
    url = base + (path if session is None else f"/session/{session}{path}")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)["value"]
    except urllib.error.HTTPError as e:
        sys.exit(f"screenshot.sh: WebDriver {method} {path}: {e.code} {e.read().decode()}")


def js(script):
    return send("POST", "/execute/sync", {"script": script, "args": []})


def element(css):
    v = send("POST", "/element", {"using": "css selector", "value": css})
    return v["element-6066-11e4-a52e-4f735466cecf"]


def until(script, what):
    wait(what, lambda: js(script) is True, within=20)


try:
    wait("chromedriver did not answer", lambda: ok(base + "/status"))
    session = None
    session = send("POST", "/session", {"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--lang=en-US", "--hide-scrollbars", f"--window-size={WIDTH},1000"],
            "prefs": {"intl.accept_languages": "en-US"},
        },
    }}})["sessionId"]
    # exactly WIDTH CSS pixels wide, at scale 1
    metrics = {"width": WIDTH, "height": 1000, "deviceScaleFactor": 1, "mobile": False}
    send("POST", "/goog/cdp/execute", {"cmd": "Emulation.setDeviceMetricsOverride", "params": metrics})
    send("POST", "/url", {"url": page})
    until("return !document.getElementById('login').hidden", "the sign-in form did not show")
    send("POST", f"/element/{element('#token')}/value", {"text": os.environ["SECRET"]})
    send("POST", f"/element/{element('#login-form button[type=submit]')}/click", {})
    until("return document.getElementById('card-tokens').textContent !== '–'", "no figures")
    until("return document.querySelectorAll('.uplot').length === 2", "no charts")
    # the whole page: as tall as it is, then the charts drawn again at that size
    height = js("return document.documentElement.scrollHeight")
    metrics["height"] = height
    send("POST", "/goog/cdp/execute", {"cmd": "Emulation.setDeviceMetricsOverride", "params": metrics})
    time.sleep(0.6)
    js("window.scrollTo(0, 0); document.activeElement && document.activeElement.blur()")
    png = base64.b64decode(send("GET", "/screenshot"))
    with open(out, "wb") as f:
        f.write(png)
    print(f"screenshot.sh: wrote {out} ({WIDTH}x{height})", file=sys.stderr)
finally:
    if session is not None:
        try:
            urllib.request.urlopen(urllib.request.Request(f"{base}/session/{session}", method="DELETE"),
                                   timeout=10).close()
        except OSError:
            pass
    driver.terminate()
    driver.wait()
PY
