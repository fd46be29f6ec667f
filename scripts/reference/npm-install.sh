#!/usr/bin/env bash
# Installs one pinned npm package (and what it needs) into PREFIX/node_modules unless that version
# is there already: the reference readers and clients svmoe's tests run (openai-client.sh,
# tensorboard-events.sh). Messages go to stderr.
#   scripts/reference/npm-install.sh PACKAGE VERSION PREFIX
set -euo pipefail
package=$1 version=$2 prefix=$3
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "npm-install: node and npm are needed (scripts/install-deps.sh installs them)" >&2
  exit 1
fi
installed=$(node -p "require('$prefix/node_modules/$package/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$version" ]; then
  echo "npm-install: installing $package@$version (npm) into $prefix" >&2
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "$package@$version" >&2
fi
