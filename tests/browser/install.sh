#!/usr/bin/env bash
# Installs what the browser tests need: Debian's Chromium and npm's playwright-core
# (pinned in package-lock.json). Idempotent; run by tests/api/browser.rs before the first
# browser test, and safe to run by hand.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y -q chromium >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q chromium >/dev/null
  }
fi
want=$(node -p "require('./package-lock.json').packages['node_modules/playwright-core'].version")
have=$(node -p "require('./node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
command -v chromium
