#!/usr/bin/env bash
# Install Java 17 (from the OS packages) for the Spark engine and its tests, if no Java 17 or later is found.
# Idempotent: does nothing when `java` (JAVA_HOME's, else the one on PATH) is already 17 or later. Needs root
# (or passwordless sudo) and apt-get to install; otherwise it says what to install and fails.
set -euo pipefail

PACKAGE=openjdk-17-jre-headless

java_major() {
    local java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
    command -v "$java" >/dev/null 2>&1 || { echo 0; return; }
    "$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\.\{0,1\}\([0-9]*\).*/\1 \2/p' | head -1 |
        awk '{ print ($1 == 1 ? $2 : $1) }'
}

major="$(java_major)"
if [ "${major:-0}" -ge 17 ]; then
    echo "java ${major} already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: Spark needs Java 17 or later (found: ${major:-none}); install it (macOS: brew install openjdk@17;" \
         "Fedora: dnf install java-17-openjdk-headless) or point JAVA_HOME at one" >&2
    exit 1
fi
bash "$(dirname "$0")/apt-install.sh" "Java 17" "$PACKAGE"
major="$(java_major)"
if [ "${major:-0}" -lt 17 ]; then
    echo "error: apt-get finished but java 17 is still not found (JAVA_HOME=${JAVA_HOME:-unset})" >&2
    exit 1
fi
echo "java ${major} installed"
