#!/usr/bin/env bash
# Runs Microsoft's own Python clients (msal, msgraph-sdk) against the emulator.
# Usage: bash crates/emulator/conformance/run.sh PATH_TO_DESKBRIDGE_BINARY
set -euo pipefail

bin="${1:?usage: run.sh PATH_TO_DESKBRIDGE_BINARY}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="${DESKBRIDGE_CONFORMANCE_VENV:-${CARGO_TARGET_DIR:-$root/target}/emulator-conformance-venv}"
python="${PYTHON:-python3}"

# Reuse the virtual environment while the pinned requirements are unchanged.
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi

work="$(mktemp -d)"
emulator_pid=""
cleanup() {
  if [[ -n "$emulator_pid" ]] && kill -0 "$emulator_pid" 2>/dev/null; then
    kill "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" emulator --listen 127.0.0.1:0 --tls --tenants 2 --users-per-tenant 2000 --seed 11 \
  --ca-out "$work/ca.pem" > "$work/stdout" 2> "$work/stderr" &
emulator_pid=$!

for _ in $(seq 1 600); do
  if [[ -s "$work/stdout" ]] && head -n1 "$work/stdout" | grep -q '}$'; then break; fi
  if ! kill -0 "$emulator_pid" 2>/dev/null; then
    echo "the emulator exited before it was ready:" >&2
    cat "$work/stderr" >&2
    exit 1
  fi
  sleep 0.1
done
head -n1 "$work/stdout" > "$work/summary.json"
[[ -s "$work/summary.json" ]] || { echo "no JSON line from the emulator" >&2; exit 1; }

# REQUESTS_CA_BUNDLE (and CURL_CA_BUNDLE) would override msal's verify= (see PERFORMANCE.md); the suite passes the CA itself.
env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE -u SSL_CERT_FILE "$venv/bin/python" "$here/suite.py" "$work/summary.json"
