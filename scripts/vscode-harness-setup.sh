#!/usr/bin/env bash
# Installs a real VS Code for the integration tests in test/vscode/ (headless, offline, npm registry + apt only):
#   code-server 4.100.3 = VS Code 1.100.3 server + web workbench; its extension host is the system Node 20,
#   so onnxruntime-node loads as in plain Node. Driven by Debian's chromium through playwright-core.
# Adapted from the verified recipe in ../shared/vscode-harness/setup.sh (see its README for the why of each step).
#
# Usage: bash scripts/vscode-harness-setup.sh      (idempotent: a second run only checks the stamp, < 1 s)
#   ONNXC_VSCODE_DIR   install dir (default ~/.cache/onnx-compress/vscode-harness)
#   ONNXC_VSCODE_FORCE=1  reinstall even when the stamp matches
# Output layout: $DIR/cs/bin/code-server, $DIR/driver/node_modules/playwright-core, $DIR/stamp
set -euo pipefail
DIR="${ONNXC_VSCODE_DIR:-$HOME/.cache/onnx-compress/vscode-harness}"
CS_VERSION=4.100.3   # engines.node "20"; newer code-server needs Node 22/24
PW_VERSION=1.65.1    # verified against Debian bookworm's chromium 156
t0=$SECONDS
step() { echo "== [vscode-harness-setup $((SECONDS - t0))s] $*"; }

node -e 'process.exit(process.versions.node.split(".")[0] === "20" ? 0 : 1)' \
  || { echo "code-server $CS_VERSION needs Node 20, have $(node -v)" >&2; exit 1; }
# Native modules are built for this Node ABI, so the ABI is part of the stamp.
STAMP_WANT="code-server=$CS_VERSION playwright-core=$PW_VERSION node-abi=$(node -p process.versions.modules)"
CS="$DIR/cs/lib/node_modules/code-server"
if [ "${ONNXC_VSCODE_FORCE:-0}" != 1 ] && [ "$(cat "$DIR/stamp" 2>/dev/null)" = "$STAMP_WANT" ] \
  && [ -x "$DIR/cs/bin/code-server" ] && [ -d "$DIR/driver/node_modules/playwright-core" ] \
  && command -v chromium >/dev/null; then
  echo "vscode-harness: up to date in $DIR ($STAMP_WANT)"
  exit 0
fi
rm -f "$DIR/stamp"
mkdir -p "$DIR"

# 1. Debian packages: the browser, ripgrep (VS Code's rg is otherwise a GitHub download), krb5 headers, toolchain.
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v rg >/dev/null || need+=(ripgrep)
[ -f /usr/include/krb5.h ] || [ -f /usr/include/krb5/krb5.h ] || need+=(libkrb5-dev)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  step "apt-get install ${need[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# node-gyp must use the installed Node headers, never download them.
NODEDIR="$(dirname "$(dirname "$(command -v node)")")"
[ -f "$NODEDIR/include/node/node.h" ] || { echo "no Node headers at $NODEDIR/include/node" >&2; exit 1; }
NODE_GYP="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
export npm_config_nodedir="$NODEDIR"
npm_q=(--no-audit --no-fund --loglevel=error)

# 2. code-server without lifecycle scripts (its postinstall's nested npm install breaks under npm 11),
#    then its postinstall steps by hand.
step "npm install code-server@$CS_VERSION --ignore-scripts"
npm install -g --prefix "$DIR/cs" --ignore-scripts "${npm_q[@]}" "code-server@$CS_VERSION" >/dev/null

step "build argon2 from source (its prebuilt binary is a GitHub download)"
(cd "$CS" && npm_config_build_from_source=true npm rebuild argon2 >"$DIR/build-argon2.log" 2>&1) \
  || { tail -20 "$DIR/build-argon2.log"; exit 1; }

step "npm install lib/vscode deps --ignore-scripts"
(cd "$CS/lib/vscode" && npm install --omit=dev --ignore-scripts "${npm_q[@]}" >/dev/null)

step "node-gyp rebuild node-pty, @vscode/spdlog, native-watchdog, @vscode/deviceid, kerberos"
for m in node-pty @vscode/spdlog native-watchdog @vscode/deviceid kerberos; do
  log="$DIR/build-${m//\//_}.log"
  if ! (cd "$CS/lib/vscode/node_modules/$m" && node "$NODE_GYP" rebuild --nodedir="$NODEDIR" -j 2 >"$log" 2>&1); then
    if [ "$m" = kerberos ]; then echo "WARN: kerberos build failed (only used for proxy auth), see $log"
    else tail -20 "$log"; exit 1; fi
  fi
done

step "ripgrep from Debian in place of @vscode/ripgrep's download"
mkdir -p "$CS/lib/vscode/node_modules/@vscode/ripgrep/bin"
cp -f "$(command -v rg)" "$CS/lib/vscode/node_modules/@vscode/ripgrep/bin/rg"

step "built-in extensions deps"
(cd "$CS/lib/vscode/extensions" && npm install --omit=dev --ignore-scripts "${npm_q[@]}" >/dev/null \
  && node ./postinstall.mjs >/dev/null)

step "postinstall.sh symlinks"
(cd "$CS/lib/vscode" && ln -sfn node_modules node_modules.asar \
  && cd bin/remote-cli && ln -sfn code-linux.sh code-server && cd ../helpers && ln -sfn browser-linux.sh browser.sh)

# 3. The browser driver lives here, not in the project's devDependencies: it is only meaningful together with
#    this code-server and the system chromium, and it never downloads a browser (executablePath is /usr/bin/chromium).
step "driver: playwright-core@$PW_VERSION"
mkdir -p "$DIR/driver"
(cd "$DIR/driver" && { [ -f package.json ] || echo '{"name":"onnxc-vscode-driver","private":true}' >package.json; } \
  && npm install "${npm_q[@]}" "playwright-core@$PW_VERSION" >/dev/null)

step "check"
mkdir -p "$DIR/home"
HOME="$DIR/home" XDG_CONFIG_HOME="$DIR/home/.config" XDG_DATA_HOME="$DIR/home/.local/share" \
  "$DIR/cs/bin/code-server" --version
echo "$STAMP_WANT" >"$DIR/stamp"
echo "vscode-harness: installed in $((SECONDS - t0))s: $DIR"
