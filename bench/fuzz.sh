#!/usr/bin/env bash
# Fuzzes the parsers a stranger reaches, with their property tests (`src/proptests.rs` of
# nimbus-iam, nimbus-gateway, nimbus-ml and the nimbus binary, and `protocols::proptests` of
# nimbus-ml: the prediction-body decoders against serde_json): for MINUTES minutes per parser,
# the parser's property tests run again and again in a release build, CASES cases per test
# and run, each run with a fresh seed. Prints per parser the runs, cases and failures (with
# proptest's minimal failing input and the seed that reproduces it), then a summary table.
# Exits 1 when any case failed.
# Usage: bench/fuzz.sh [MINUTES]   env: CASES (cases per test and run, 20000),
#   ONLY (parsers to run, comma-separated: sigv4,router,csv,xgboost,project,instances)
# Reproduce a failure: NIMBUS_PROPTEST_CASES=CASES PROPTEST_RNG_SEED=SEED \
#   cargo test --release -p CRATE --lib proptests::TEST   (the binary: --bin nimbus)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MINUTES="${1:-1}"
CASES="${CASES:-20000}"
ONLY="${ONLY:-sigv4,router,csv,xgboost,project,instances}"
[[ "$CASES" =~ ^[1-9][0-9]*$ ]] || { echo "CASES must be a positive whole number, not $CASES" >&2; exit 2; }
SECONDS_EACH="$(awk -v m="$MINUTES" 'BEGIN { s = m * 60; if (s < 1) s = 1; printf "%d", s }')"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
cd "$ROOT"

# parser | cargo selection of the test binary | test names (a regex on `--list` names)
PARSERS=(
  "sigv4|-p nimbus-iam --lib|^proptests::"
  "router|-p nimbus-gateway --lib|^proptests::"
  "csv|-p nimbus-ml --lib|^proptests::(csv_|generated_tables)"
  "xgboost|-p nimbus-ml --lib|^proptests::a_(model|mangled)"
  "project|-p nimbus --bin nimbus|^proptests::.*never_panics?$"
  "instances|-p nimbus-ml --lib|^protocols::proptests::"
)

# The test executable cargo builds for a selection.
executable() {
  # shellcheck disable=SC2086 # the selection is several words
  cargo test --release --no-run --message-format=json $1 2>"$OUT/build.log" |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' | tail -1
}

summary=()
failed_any=0
for entry in "${PARSERS[@]}"; do
  IFS='|' read -r parser selection pattern <<<"$entry"
  [[ ",$ONLY," == *",$parser,"* ]] || continue
  echo "== $parser ($selection): building"
  bin="$(executable "$selection")" || { cat "$OUT/build.log" >&2; exit 1; }
  [ -x "$bin" ] || { echo "no test executable for $selection" >&2; cat "$OUT/build.log" >&2; exit 1; }
  mapfile -t tests < <("$bin" --list 2>/dev/null | sed -n 's/: test$//p' | grep -E "$pattern")
  [ "${#tests[@]}" -gt 0 ] || { echo "no tests match $pattern in $bin" >&2; exit 1; }
  echo "   ${#tests[@]} property tests: ${tests[*]}"
  runs=0 cases=0 failures=0
  deadline=$((SECONDS + SECONDS_EACH))
  while [ "$SECONDS" -lt "$deadline" ]; do
    seed="$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')"
    log="$OUT/$parser-$runs.log"
    status=0
    NIMBUS_PROPTEST_CASES="$CASES" PROPTEST_RNG_SEED="$seed" \
      "$bin" --exact "${tests[@]}" --test-threads 2 >"$log" 2>&1 || status=$?
    runs=$((runs + 1))
    passed="$(grep -c '^test .* \.\.\. ok$' "$log" || true)"
    cases=$((cases + passed * CASES))
    if [ "$status" -ne 0 ]; then
      while read -r name; do
        failures=$((failures + 1))
        # A failed test ran its successes and one failing case.
        ok="$(awk -v t="---- $name stdout ----" '$0 == t { f = 1 } f && /successes: / { print $2; exit }' "$log")"
        cases=$((cases + ${ok:-0} + 1))
        echo "   FAILED $name (seed $seed, $CASES cases):"
        awk -v t="---- $name stdout ----" '
          $0 == t { f = 1; next }
          f && /^(---- |stack backtrace:|failures:$)/ { exit }
          f { print "     " $0 }' "$log" | head -60
      done < <(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log")
      if ! grep -q '^test .* \.\.\. FAILED$' "$log"; then
        failures=$((failures + 1))
        echo "   the test binary failed (status $status, seed $seed):"
        tail -20 "$log" | sed 's/^/     /'
      fi
    fi
  done
  echo "   $runs runs, $cases cases, $failures failures"
  [ "$failures" -eq 0 ] || failed_any=1
  summary+=("$(printf '%-8s %6d %10d %9d' "$parser" "$runs" "$cases" "$failures")")
done

echo
echo "summary: ${MINUTES} min per parser, $CASES cases per test and run, fresh seed per run"
printf '%-8s %6s %10s %9s\n' parser runs cases failures
printf '%s\n' "${summary[@]}"
exit "$failed_any"
