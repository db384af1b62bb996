#!/usr/bin/env bash
# setup.sh: make this machine able to run the legacy app, its tests and the demo.
# Idempotent: installs only what is missing. Debian packages give redis-server,
# gunicorn and redis-py; their pure-Python modules run under the machine's python3
# through a project-local folder of links (.pydeps), because PyPI is unreachable here.
# Where pip can reach an index, `pip install -r legacy/requirements.txt` is the normal route.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkgs=()
command -v redis-server >/dev/null || pkgs+=(redis-server)
[ -d /usr/lib/python3/dist-packages/gunicorn ] || pkgs+=(gunicorn)
[ -d /usr/lib/python3/dist-packages/redis ] || pkgs+=(python3-redis)
# compat links the system zlib through cgo so session cookies are compressed
# byte-for-byte like CPython's zlib (CGO_ENABLED=0 builds fall back to Go's zlib).
command -v gcc >/dev/null || pkgs+=(gcc)
[ -f /usr/include/zlib.h ] || pkgs+=(zlib1g-dev)
# deploy/'s tests run promtool on the alert rules and a real Prometheus server against cutover.
command -v promtool >/dev/null && command -v prometheus >/dev/null || pkgs+=(prometheus)
# The console's end-to-end tests (internal/console) drive headless Chromium;
# a font keeps their screenshots legible.
command -v chromium >/dev/null || pkgs+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || pkgs+=(fonts-dejavu-core)
if [ "${CUTOVER_BENCH_TOOLS:-}" = 1 ]; then
  command -v wrk >/dev/null || pkgs+=(wrk)
  command -v hey >/dev/null || pkgs+=(hey)
  command -v nginx >/dev/null || pkgs+=(nginx)
  command -v haproxy >/dev/null || pkgs+=(haproxy)
  command -v caddy >/dev/null || pkgs+=(caddy)
fi
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
dist=/usr/lib/python3/dist-packages
mkdir -p "$root/.pydeps"
for m in gunicorn redis packaging async_timeout deprecated wrapt; do
  if [ -e "$dist/$m" ] && [ ! -e "$root/.pydeps/$m" ]; then ln -s "$dist/$m" "$root/.pydeps/$m"; fi
done
PYTHONPATH="$root/.pydeps" python3 -c 'import gunicorn, redis, flask, boto3, itsdangerous' 
