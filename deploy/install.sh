#!/usr/bin/env bash
# Installs edgestore into ./.venv of this checkout (Debian / Raspberry Pi OS bookworm).
#   deploy/install.sh          the node: what `edgestore up` and `edgestore serve` need
#   deploy/install.sh --test   also what the test suite needs (clients it drives)
# System packages come from apt (run as root, or with sudo available); Python packages
# from PyPI into the venv, so the system Python stays untouched (PEP 668).
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "install.sh: need root (or sudo) to install: $*" >&2; exit 1; fi; }

need_apt=()
python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v fusermount3 >/dev/null || need_apt+=(fuse3)   # `edgestore mount` (libfuse3)
if [ "$with_tests" = 1 ]; then
  command -v curl >/dev/null || need_apt+=(curl)
  command -v openssl >/dev/null || need_apt+=(openssl)   # self-signed certificates for HTTPS tests
  # The third-party clients the suite drives, and FUSE for the mount tests.
  for tool in s3cmd rclone s3fs; do command -v $tool >/dev/null || need_apt+=($tool); done
  command -v faketime >/dev/null || need_apt+=(faketime)   # a node with a lagging clock
  command -v ip >/dev/null || need_apt+=(iproute2)         # network namespaces: a real partition
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$with_tests" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[test]'
else
  .venv/bin/python -m pip install -q -e .
fi
echo "edgestore installed in $(pwd)/.venv (run .venv/bin/edgestore --help)"
