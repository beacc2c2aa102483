#!/usr/bin/env bash
# Install the system Chromium used by the browser tests (tests/e2e), if it is missing.
# Idempotent: does nothing when /usr/bin/chromium already exists. Needs root (or passwordless sudo).
# Playwright's own browser download does not work on these machines; the tests drive /usr/bin/chromium.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "error: $CHROMIUM is missing and this script needs root to install it (apt-get install chromium)" >&2
    exit 1
fi

echo "installing chromium (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium

if [ ! -x "$CHROMIUM" ]; then
    echo "error: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
