#!/usr/bin/env bash
# Packages the extension as a platform-specific .vsix (onnxruntime-node ships native binaries per platform).
# Usage: bash scripts/vscode-package.sh [target] [out.vsix]     target: linux-x64 (default), linux-arm64,
#        darwin-arm64, win32-x64, win32-arm64 (the platforms onnxruntime-node 1.30 has binaries for).
# Expects a production build in dist/ (`npm run package` does it). The file list comes from .vscodeignore, an
# allow-list; vsce's npm dependency scan must see a consistent node_modules (`npm ci` first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET="${1:-linux-x64}"
OUT="${2:-onnx-compress.vsix}"
case "$TARGET" in
  linux-x64|linux-arm64|darwin-arm64|win32-x64|win32-arm64) ;;
  *) echo "unsupported target '$TARGET': onnxruntime-node 1.30 has binaries for linux-x64, linux-arm64, darwin-arm64, win32-x64, win32-arm64" >&2; exit 1 ;;
esac
BIN="node_modules/onnxruntime-node/bin/napi-v6/${TARGET%-*}/${TARGET#*-}"
[ -f "$BIN/onnxruntime_binding.node" ] || { echo "missing $BIN/onnxruntime_binding.node (npm ci?)" >&2; exit 1; }
[ -f dist/extension.js ] || { echo "missing dist/extension.js: build first" >&2; exit 1; }

mkdir -p .tmp
IGNORE=".tmp/vscodeignore-$TARGET"
sed "s#napi-v6/linux/x64/#napi-v6/${TARGET%-*}/${TARGET#*-}/#" .vscodeignore >"$IGNORE"
# --no-yarn: dependencies come from `npm list --production`, then .vscodeignore picks the two packages we need.
npx --no-install vsce package --no-yarn --no-rewrite-relative-links --target "$TARGET" --ignoreFile "$IGNORE" --skip-license -o "$OUT"
npx --no-install vsce ls --no-yarn --ignoreFile "$IGNORE" >".tmp/vsix-files-$TARGET.txt"
echo "vsix: $OUT ($(du -k "$OUT" | cut -f1) KiB, $(wc -l <".tmp/vsix-files-$TARGET.txt") files, list in .tmp/vsix-files-$TARGET.txt)"
