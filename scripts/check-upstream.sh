#!/usr/bin/env bash
# `opdoc check --upstream` against the vendor checkout in $OPDOC_UPSTREAM (default:
# ../shared/upstream/deepseek-ocr), in .venv-upstream (scripts/setup-upstream.sh). Extra arguments
# go to `opdoc check`. Without a checkout the step skips, saying so; under CI=true that fails.
set -uo pipefail
cd "$(dirname "$0")/.."
DIR=${OPDOC_UPSTREAM:-../shared/upstream/deepseek-ocr}
if [ ! -f "$DIR/modeling_deepseekv2.py" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "no vendor checkout at $DIR: CI requires one (set OPDOC_UPSTREAM to a checkout of deepseek-ai/DeepSeek-OCR)" >&2
    exit 1
  fi
  echo "no vendor checkout at $DIR: upstream check skipped (set OPDOC_UPSTREAM to a checkout of deepseek-ai/DeepSeek-OCR)"
  exit 0
fi
if [ ! -x .venv-upstream/bin/opdoc ]; then
  echo "no .venv-upstream: run \`make check-upstream\` (or bash scripts/setup-upstream.sh) first" >&2
  exit 1
fi
exec .venv-upstream/bin/opdoc check --upstream "$DIR" "$@"
