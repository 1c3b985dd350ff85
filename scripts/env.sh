# Sourced by the project's scripts: puts a Node >= 22 first on PATH, installing Node 24 from the
# npm registry's `node` package into ~/.cache/lepton/node when the machine's Node is older.
# Usage: source scripts/env.sh
LEPTON_CACHE=${LEPTON_CACHE:-$HOME/.cache/lepton}
LEPTON_NODE_PREFIX=$LEPTON_CACHE/node
if [ -x "$LEPTON_NODE_PREFIX/bin/node" ]; then
  export PATH="$LEPTON_NODE_PREFIX/bin:$PATH"
fi
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 22 ]; then
  echo "[env] Node $(node --version 2>/dev/null || echo none) is too old; installing Node 24 into $LEPTON_NODE_PREFIX" >&2
  npm install -g --prefix "$LEPTON_NODE_PREFIX" node@24 >&2
  export PATH="$LEPTON_NODE_PREFIX/bin:$PATH"
  hash -r
fi
if [ "$(node_major)" -lt 22 ]; then
  echo "[env] could not get Node >= 22" >&2
  return 1 2>/dev/null || exit 1
fi
