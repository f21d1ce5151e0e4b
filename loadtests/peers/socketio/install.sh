#!/usr/bin/env bash
# Installs the Socket.IO peer's npm packages from package-lock.json (`npm ci`), once:
# `parley-load` runs this itself before it starts the peer. Without arguments it leaves
# out the optional SQLite driver (better-sqlite3, a native module built here from source
# with node-gyp: about two minutes on a 2-core machine); `--sqlite` includes it.
set -euo pipefail
cd "$(dirname "$0")"
mode=pg
[ "${1:-}" = "--sqlite" ] && mode=sqlite
stamp="node_modules/.parley-install"
want="$mode $(sha256sum package-lock.json | cut -d' ' -f1)"
if [ -f "$stamp" ]; then
  have="$(cat "$stamp")"
  # A full install serves both modes.
  [ "$have" = "$want" ] && exit 0
  [ "$mode" = pg ] && [ "$have" = "sqlite ${want#pg }" ] && exit 0
fi
command -v npm >/dev/null || { echo "install.sh: npm is not installed" >&2; exit 3; }
# No prebuilt binaries can be downloaded here (only package registries are reachable):
# build native modules from source against the local Node headers.
export npm_config_build_from_source=true
[ -f /usr/include/node/node.h ] && export npm_config_nodedir=/usr
if [ "$mode" = sqlite ]; then
  npm ci --no-audit --no-fund --loglevel=error
  node -e 'require("better-sqlite3")(":memory:")'
else
  npm ci --omit=optional --no-audit --no-fund --loglevel=error
fi
echo "$want" > "$stamp"
