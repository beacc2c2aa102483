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

bash "$(dirname "$0")/apt-install.sh" "$CHROMIUM" chromium

if [ ! -x "$CHROMIUM" ]; then
    echo "error: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
