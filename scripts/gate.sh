#!/usr/bin/env bash
# Every gate CI enforces, each step timed. Run through `make test`, which sets up first.
set -uo pipefail
BIN=.venv/bin
export NO_MKDOCS_2_WARNING=1  # mkdocs prints a banner about its next major version on every run
failed=()
step() {
  local name=$1; shift
  local start=$SECONDS
  echo "::: $name: $*"
  if "$@"; then
    echo "::: $name passed in $((SECONDS - start)) s"
  else
    echo "::: $name FAILED in $((SECONDS - start)) s"
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
