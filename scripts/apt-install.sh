#!/usr/bin/env bash
# Usage: apt-install.sh WHAT PACKAGE
# apt-get install PACKAGE as root, or through sudo; otherwise fail saying that WHAT is missing and what to
# install. Shared by install-chromium.sh and install-java.sh, which decide first whether it is needed.
set -euo pipefail

what="$1"
package="$2"

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "error: $what is missing and this script needs root to install it (apt-get install $package)" >&2
    exit 1
fi

echo "installing $what ($package, apt-get)..."
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y "$package"
