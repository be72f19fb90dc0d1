#!/usr/bin/env bash
# The project's test command (`npm test`): system packages the tests need, typecheck + build, engine
# unit tests (mocha), then the integration tests in a real VS Code (code-server), dev folder and the
# packaged .vsix. Ends with one line "all: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
log() { echo "== [$((SECONDS - t0))s] $*"; }

# System packages: ONNX's own operator test models (conformance test).
if [ ! -d /usr/share/libonnx-testdata/data ]; then
  if [ "$(id -u)" = 0 ]; then
    log "apt-get install libonnx-testdata"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libonnx-testdata >/dev/null
  else
    echo "Missing /usr/share/libonnx-testdata: run 'sudo apt-get install libonnx-testdata' (Debian/Ubuntu) or set ONNX_TESTDATA." >&2
  fi
fi

passed=0; failed=0
tally() { # reads "<label>: N passed, N failed" from a log file
  local line; line=$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
  if [ -z "$line" ]; then failed=$((failed + 1)); return; fi
  passed=$((passed + $(sed -E 's/^[a-z]+: ([0-9]+) passed.*/\1/' <<<"$line")))
  failed=$((failed + $(sed -E 's/^[a-z]+: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")))
}
out=$(mktemp -d)

log "typecheck + build"
if ! npm run --silent compile; then echo "compile: 0 passed, 1 failed"; echo "all: 0 passed, 1 failed"; exit 1; fi

log "unit tests (mocha)"
npx mocha 2>&1 | tee "$out/unit.log"; tally "$out/unit.log"

if [ "${ONNXC_SKIP_VSCODE:-0}" != 1 ]; then
  log "integration tests in VS Code (dev folder)"
  npm run --silent test:vscode 2>&1 | tee "$out/vscode.log"; tally "$out/vscode.log"
  log "integration tests in VS Code (packaged .vsix)"
  npm run --silent test:vscode:vsix 2>&1 | tee "$out/vsix.log"; tally "$out/vsix.log"
fi

log "done"
echo "all: $passed passed, $failed failed"
[ "$failed" = 0 ]
