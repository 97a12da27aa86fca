#!/usr/bin/env bash
# schemathesis.sh: property-based tests of a running taskapi against its own OpenAPI document (Schemathesis).
# Installs a pinned Schemathesis from PyPI into a virtualenv under .cache/ on first use and reuses it after.
set -euo pipefail

readonly PROG=schemathesis
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
# One exact version: its checks, defaults and output are what this script was written against (needs Python 3.11+).
readonly ST_VERSION=4.32.5
readonly MIN_PYTHON=3.11
VENV=$(realpath -m -- "${ST_VENV:-$ROOT/.cache/schemathesis-venv}")
readonly VENV
WORK_DIR=$(realpath -m -- "${ST_WORK_DIR:-$ROOT/.cache/schemathesis}")
readonly WORK_DIR
readonly PYTHON=${ST_PYTHON:-python3}
readonly MAX_EXAMPLES=${ST_MAX_EXAMPLES:-20}
readonly SEED=${ST_SEED:-20261125}
readonly REQUEST_TIMEOUT=${ST_REQUEST_TIMEOUT:-15}
# "No 5xx" and "no response that breaks its own schema": status, content type and body must be the documented ones.
readonly CHECKS=not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance

usage() {
  cat <<'EOF'
Usage: scripts/schemathesis.sh BASE_URL [extra st run arguments]

Runs `st run` (Schemathesis) against the taskapi at BASE_URL, e.g. http://127.0.0.1:8080, reading its schema from
BASE_URL/api/openapi.json. Every phase runs (examples, coverage, fuzzing, stateful), with valid and invalid data,
and these checks on every response:
  not_a_server_error           no 5xx
  response_schema_conformance  the body matches the schema documented for its status
  content_type_conformance     the Content-Type is one documented for the operation
  status_code_conformance      the status is one documented for the operation
Extra arguments go to `st run` after these and win over them, e.g. --exclude-path-regex '/trigger$' or
-c all. Schemathesis creates, changes and deletes tasks on that server.

Environment:
  ST_MAX_EXAMPLES     test cases per operation and phase (default 20: about 1,000 requests, 20 s to 2 min)
  ST_SEED             random seed; the same seed and server state give the same cases (default 20261125)
  ST_REQUEST_TIMEOUT  seconds a request may take before it counts as an error (default 15)
  ST_PYTHON           interpreter for the virtualenv (default python3, 3.11 or newer)
  ST_VENV             the virtualenv (default .cache/schemathesis-venv; made on first use, reused after)
  ST_WORK_DIR         where st runs (default .cache/schemathesis): its replay cache and Hypothesis' files land
                      there, and relative paths in extra arguments (e.g. --report-dir) are taken from it

Exit codes: 0 no check failed, 1 a check failed or the run hit an error (or the install failed), 2 bad usage.
EOF
}

# shellcheck source=scripts/lib/kafka-tools.sh
source "$ROOT/scripts/lib/kafka-tools.sh" # warn, die, now_us, elapsed_s

check_settings() {
  [[ "$MAX_EXAMPLES" =~ ^[1-9][0-9]*$ ]] || die 2 "ST_MAX_EXAMPLES must be a positive number, got '$MAX_EXAMPLES'"
  [[ "$SEED" =~ ^[0-9]+$ ]] || die 2 "ST_SEED must be a whole number, got '$SEED'"
  [[ "$REQUEST_TIMEOUT" =~ ^[0-9]+(\.[0-9]+)?$ && ! "$REQUEST_TIMEOUT" =~ ^0+(\.0+)?$ ]] ||
    die 2 "ST_REQUEST_TIMEOUT must be a positive number of seconds, got '$REQUEST_TIMEOUT'"
}

# ---------------------------------------------------------------------------------------------------------------
# the virtualenv: made once, kept while it holds ST_VERSION and its interpreter still runs

venv_ready() {
  [[ "$(cat "$VENV/.schemathesis-version" 2>/dev/null)" == "$ST_VERSION" && -x "$VENV/bin/st" ]] &&
    "$VENV/bin/python" -c '' 2>/dev/null
}

ensure_venv() {
  venv_ready && return 0
  mkdir -p "$(dirname -- "$VENV")"
  # Two runs at once must not both build the same venv.
  exec 8>"$VENV.lock"
  flock 8
  if venv_ready; then
    exec 8>&-
    return 0
  fi
  command -v "$PYTHON" >/dev/null 2>&1 || die 1 "$PYTHON not found on PATH: install Python $MIN_PYTHON+ or set ST_PYTHON"
  "$PYTHON" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$MIN_PYTHON'.split('.'))))" ||
    die 1 "schemathesis $ST_VERSION needs Python $MIN_PYTHON+, but $PYTHON is $("$PYTHON" -c 'import platform; print(platform.python_version())'): set ST_PYTHON"
  local t0 log
  t0=$(now_us)
  printf 'Installing schemathesis %s into %s\n' "$ST_VERSION" "$VENV"
  rm -rf -- "$VENV"
  log=$(mktemp)
  if ! "$PYTHON" -m venv "$VENV" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f -- "$log"
    rm -rf -- "$VENV"
    die 1 "creating the virtualenv failed (output above; on Debian: apt-get install python3-venv)"
  fi
  if ! PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --quiet \
    "schemathesis==$ST_VERSION" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f -- "$log"
    rm -rf -- "$VENV"
    die 1 "installing schemathesis $ST_VERSION from PyPI failed (output above)"
  fi
  rm -f -- "$log"
  printf '%s\n' "$ST_VERSION" >"$VENV/.schemathesis-version"
  exec 8>&-
  printf 'Installed schemathesis %s in %s s\n' "$ST_VERSION" "$(elapsed_s "$t0")"
}

# ---------------------------------------------------------------------------------------------------------------

# A clear one-line error when the schema cannot be had, instead of st's traceback-like report.
check_schema() {
  "$VENV/bin/python" - "$1" <<'EOF' || exit 1
import json, sys, urllib.request
url = sys.argv[1]
try:
    with urllib.request.urlopen(url, timeout=10) as response:
        doc = json.load(response)
except Exception as e:  # one line whatever went wrong: refused, timeout, 404, not JSON
    sys.exit(f"schemathesis: cannot read the OpenAPI document at {url}: {e} (is taskapi running there?)")
if not isinstance(doc, dict) or "openapi" not in doc:
    sys.exit(f"schemathesis: {url} is JSON but not an OpenAPI document (no 'openapi' field)")
EOF
}

main() {
  (($#)) || {
    usage >&2
    die 2 "missing BASE_URL"
  }
  case "$1" in
  -h | --help)
    usage
    exit 0
    ;;
  esac
  local base_url=${1%/}
  shift
  [[ "$base_url" =~ ^https?://[^/]+ ]] || die 2 "BASE_URL must start with http:// or https://, got '$base_url'"
  check_settings
  ensure_venv
  local schema_url="$base_url/api/openapi.json"
  check_schema "$schema_url"
  mkdir -p "$WORK_DIR"
  cd "$WORK_DIR"
  export HYPOTHESIS_STORAGE_DIRECTORY="$WORK_DIR/.hypothesis"

  local t0 status=0
  t0=$(now_us)
  printf 'Testing %s with schemathesis %s (%s examples per operation, seed %s)\n' "$base_url" "$ST_VERSION" \
    "$MAX_EXAMPLES" "$SEED"
  # --url: the schema has no servers entry, so the operations' paths are taken from BASE_URL, prefix and all.
  # --generation-database none: no examples remembered from earlier runs, so a seed gives the same cases.
  "$VENV/bin/st" run "$schema_url" \
    --url "$base_url" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --request-timeout "$REQUEST_TIMEOUT" \
    --generation-database none \
    "$@" </dev/null || status=$?
  if ((status == 0)); then
    printf 'schemathesis: no check failed against %s in %s s\n' "$base_url" "$(elapsed_s "$t0")"
  else
    warn "failed with exit code $status after $(elapsed_s "$t0") s (see above); replay a test case with: (cd $WORK_DIR && $VENV/bin/st replay ID)"
    exit 1
  fi
}

main "$@"
