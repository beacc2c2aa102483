#!/usr/bin/env bash
# What `make test` and `make demo` need from the system, checked first, with how to install what is missing.
# (Without these the failure comes later and reads like a bug: "No module named venv", "libgomp.so.1: cannot
# open shared object file" from LightGBM.) Java 17, which only the Spark engine needs, is not checked here
# (`make demo` runs without it): `make test` installs it, or says what to install (scripts/install-java.sh).
set -u
PY="${1:-python3}"
missing=0
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "missing: $PY (Python 3.11). Debian/Ubuntu: apt-get install python3.11" >&2; missing=1
elif ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  v=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  echo "missing: the venv module of $PY. Debian/Ubuntu: apt-get install python${v}-venv" >&2; missing=1
fi
if ! { ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1'; } && [ ! -e /usr/lib/x86_64-linux-gnu/libgomp.so.1 ] \
   && [ ! -e /usr/lib/aarch64-linux-gnu/libgomp.so.1 ]; then
  echo "missing: libgomp (OpenMP, needed by LightGBM). Debian/Ubuntu: apt-get install libgomp1;" \
       "Fedora: dnf install libgomp; macOS: brew install libomp" >&2; missing=1
fi
exit $missing
