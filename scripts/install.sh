#!/usr/bin/env bash
# Install tokenctl: the binary, shell completions, and — only when asked — cron entries and
# the systemd unit for a long-running monitor.
#
#   scripts/install.sh [--prefix DIR] [--binary PATH] [--with-cron] [--cron-file PATH]
#                      [--database-url URL] [--with-systemd]
#
#   --prefix DIR        where bin/ and share/ go (default /usr/local as root, else ~/.local)
#   --binary PATH       install this binary instead of building one (cargo build --release)
#   --with-cron         install the entries of crontab.example: as root into /etc/cron.d/tokenctl
#                       (running as root), otherwise into your crontab (replacing an earlier block)
#   --cron-file PATH    write the cron entries to PATH instead (cron.d format, user root)
#   --database-url URL  put this URL into the cron entries instead of the example's
#   --with-systemd      install scripts/tokenctl-monitor.service and scripts/tokenctl.logrotate
#                       (root only; creates the tokenctl system user)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "install.sh: $*" >&2; exit 2; }
if [ "$(id -u)" = 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
binary="" with_cron=0 cron_file="" url="" with_systemd=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --with-cron) with_cron=1; shift ;;
    --cron-file) cron_file=${2:?--cron-file needs a path}; with_cron=1; shift 2 ;;
    --database-url) url=${2:?--database-url needs a URL}; shift 2 ;;
    --with-systemd) with_systemd=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

if [ -z "$binary" ]; then
  command -v cargo >/dev/null || die "cargo is needed to build (or pass --binary PATH)"
  cargo build --release --locked
  binary=target/release/tokenctl
fi
[ -x "$binary" ] || die "no executable at $binary"

install -d "$prefix/bin"
install -m 755 "$binary" "$prefix/bin/tokenctl"
bin="$prefix/bin/tokenctl"
echo "installed $bin ($("$bin" --version))"

bash_dir="$prefix/share/bash-completion/completions"
zsh_dir="$prefix/share/zsh/site-functions"
fish_dir="$prefix/share/fish/vendor_completions.d"
install -d "$bash_dir" "$zsh_dir" "$fish_dir"
"$bin" completions bash > "$bash_dir/tokenctl"
"$bin" completions zsh > "$zsh_dir/_tokenctl"
"$bin" completions fish > "$fish_dir/tokenctl.fish"
echo "installed completions for bash, zsh and fish under $prefix/share"

cron_entries() { # the example, with our binary, the URL if given, and a marker
  echo "# BEGIN tokenctl (scripts/install.sh)"
  sed -e "s#^\(PATH=\)#\1$prefix/bin:#" \
      ${url:+-e "s#^TOKENCTL_DATABASE_URL=.*#TOKENCTL_DATABASE_URL=$url#"} crontab.example
  echo "# END tokenctl"
}

if [ $with_cron = 1 ]; then
  if [ -n "$cron_file" ] || [ "$(id -u)" = 0 ]; then
    target=${cron_file:-/etc/cron.d/tokenctl}
    # cron.d lines carry a user field
    cron_entries | awk '/^[0-9*]/ { $5 = $5 " root" } { print }' > "$target"
    chmod 644 "$target"
    echo "installed cron entries in $target"
  else
    { crontab -l 2>/dev/null | sed '/^# BEGIN tokenctl/,/^# END tokenctl/d'; cron_entries; } | crontab -
    echo "installed cron entries in your crontab (crontab -l shows them)"
  fi
  if [ -z "$url" ]; then
    echo "note: edit TOKENCTL_DATABASE_URL in the cron entries (or pass --database-url)" >&2
  fi
  mkdir -p /var/log/tokenctl 2>/dev/null || echo "note: create /var/log/tokenctl for the cron logs" >&2
fi

if [ $with_systemd = 1 ]; then
  [ "$(id -u)" = 0 ] || die "--with-systemd needs root"
  id tokenctl >/dev/null 2>&1 || useradd --system --home /var/lib/tokenctl --shell /usr/sbin/nologin tokenctl
  sed "s#/usr/local/bin/tokenctl#$bin#" scripts/tokenctl-monitor.service > /etc/systemd/system/tokenctl-monitor.service
  install -m 644 scripts/tokenctl.logrotate /etc/logrotate.d/tokenctl
  [ -f /etc/default/tokenctl ] || printf 'TOKENCTL_DATABASE_URL=%s\nTOKENCTL_MONITOR_ARGS=\n' "${url:-sqlite:///var/lib/tokenctl/tokenctl.db}" > /etc/default/tokenctl
  command -v systemctl >/dev/null && systemctl daemon-reload || true
  echo "installed tokenctl-monitor.service and /etc/logrotate.d/tokenctl; start it with: systemctl enable --now tokenctl-monitor"
fi
