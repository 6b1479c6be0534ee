#!/usr/bin/env bash
# Headless Chromium for the browser tests and the mermaid lint: Debian's package (a test tool's own
# browser download cannot work on machines without general internet access).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "chromium is missing: install it with 'sudo apt-get install chromium' (Debian/Ubuntu)" >&2
  echo "or set OPDOC_CHROMIUM to a Chromium binary; the browser tests need it" >&2
  exit 1
fi
