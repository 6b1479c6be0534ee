#!/usr/bin/env bash
# Every gate CI enforces, each step timed. Run through `make test`, which sets up first.
set -uo pipefail
BIN=.venv/bin
export NO_MKDOCS_2_WARNING=1  # mkdocs prints a banner about its next major version on every run
# Each step's whole output goes to test-artifacts/gate/<n>.log: a passing step prints its last line
# (its summary), a failing one the last 200 lines of its log.
LOGS=test-artifacts/gate
rm -rf "$LOGS" && mkdir -p "$LOGS"
failed=()
count=0
step() {
  local name=$1; shift
  local start=$SECONDS
  count=$((count + 1))
  local log="$LOGS/$count.log"
  echo "::: $name: $*"
  if "$@" >"$log" 2>&1; then
    echo "::: $name passed in $((SECONDS - start)) s: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1)"
  else
    echo "::: $name FAILED in $((SECONDS - start)) s; the last lines of $log:"
    tail -n 200 "$log"
    failed+=("$name")
  fi
}
step "knowledge base is current" $BIN/opdoc build --check --full
step "spec schema is current" $BIN/opdoc schema --check
step "lint" $BIN/opdoc lint
step "strict site build" $BIN/mkdocs build --strict --quiet
if [ -f opdoc/check/runner.py ]; then
  step "formulas match the modules" $BIN/opdoc check
fi
step "formulas match the vendor's classes" bash scripts/check-upstream.sh
step "tests" $BIN/python -m pytest -q
if [ ${#failed[@]} -ne 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "all gates passed"
