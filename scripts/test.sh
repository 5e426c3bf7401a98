#!/usr/bin/env bash
# Runs every test of nimbus: unit tests, the integration tests against the real binary, and
# the client-compatibility tests with real Python clients (boto3/botocore, requests-aws4auth)
# from a virtual environment this script creates (cached under ~/.cache/nimbus).
#
# PostgreSQL runs of the integration tests happen when NIMBUS_TEST_POSTGRES_URL is set
# (.ci/run sets it); otherwise they print that they are skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if command -v python3 >/dev/null 2>&1; then
  NIMBUS_TEST_PYTHON="$(scripts/python-env.sh)"
  export NIMBUS_TEST_PYTHON
else
  echo "python3 not found: the client-compatibility tests will be skipped" >&2
fi
if ! command -v psql >/dev/null 2>&1 && [ -n "${NIMBUS_TEST_POSTGRES_URL:-}" ]; then
  echo "psql not found: installing postgresql-client" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null) || true
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
# One closing line over all test binaries (cargo prints one result line per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
