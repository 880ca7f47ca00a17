#!/usr/bin/env bash
# Runs the moto server (AWS emulator) for scripts and the demo, on a free loopback port.
#   tests/moto.sh start   start it in the background (if not running), wait until it answers,
#                         print its URL
#   tests/moto.sh url     print the URL of the running server (exit 1 if none)
#   tests/moto.sh stop    stop it
#   tests/moto.sh status  exit 0 if running
# State: .tools/run/moto.{pid,url,log} (git-ignored). Installs moto via tests/setup.sh when
# .venv is missing. ARNSYNC_MOTO_SERVER overrides the executable; MOTO_PORT fixes the port.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/.tools/run"
PIDF="$RUN/moto.pid"
URLF="$RUN/moto.url"
LOGF="$RUN/moto.log"
SERVER="${ARNSYNC_MOTO_SERVER:-$ROOT/.venv/bin/moto_server}"

log() { echo "moto.sh: $*" >&2; }

running() {
  [[ -f "$PIDF" ]] || return 1
  local pid
  pid="$(cat "$PIDF")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

answers() { curl -s -o /dev/null --max-time 2 "$1/moto-api/" ; }

free_port() {
  "$ROOT/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  if running && [[ -f "$URLF" ]]; then cat "$URLF"; return 0; fi
  if [[ ! -x "$SERVER" ]]; then
    log "moto_server missing at $SERVER; running tests/setup.sh"
    bash "$ROOT/tests/setup.sh"
  fi
  [[ -x "$SERVER" ]] || { log "still no moto_server at $SERVER"; exit 1; }
  mkdir -p "$RUN"
  local port="${MOTO_PORT:-$(free_port)}" url pid
  url="http://127.0.0.1:$port"
  nohup "$SERVER" -H 127.0.0.1 -p "$port" </dev/null >"$LOGF" 2>&1 &
  pid=$!
  disown "$pid" 2>/dev/null || true
  echo "$pid" >"$PIDF"
  for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "moto_server exited early; log:"; tail -n 30 "$LOGF" >&2; rm -f "$PIDF" "$URLF"; exit 1
    fi
    if answers "$url"; then echo "$url" >"$URLF"; echo "$url"; return 0; fi
    sleep 0.1
  done
  log "moto_server did not answer on $url within 60s; log:"; tail -n 30 "$LOGF" >&2
  stop; exit 1
}

stop() {
  if running; then
    local pid
    pid="$(cat "$PIDF")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDF" "$URLF"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) if running && [[ -f "$URLF" ]]; then cat "$URLF"; else log "not running"; exit 1; fi ;;
  status) running ;;
  *) echo "usage: $0 start|stop|url|status" >&2; exit 2 ;;
esac
