#!/usr/bin/env bash
# Prints the absolute path of a Python interpreter that has the packages of
# scripts/requirements.txt installed, building the virtual environment first if needed.
#
# The environment lives in ${XDG_CACHE_HOME:-$HOME/.cache}/nimbus/venv-<hash>, where <hash>
# is the first 12 hex digits of the SHA-256 of scripts/requirements.txt, so a change of
# pins gets a fresh environment. A marker file is written only once pip has finished; a
# directory without it is a half-made environment and is removed and rebuilt. When the
# marker exists nothing is installed and the script returns at once.
#
# stdout carries only the interpreter's path; every progress or error message goes to stderr.
# Works from any directory.
set -euo pipefail

say() { printf 'python-env: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
requirements="$repo_root/scripts/requirements.txt"
[ -f "$requirements" ] || die "missing $requirements"

if command -v sha256sum >/dev/null 2>&1; then
  digest="$(sha256sum "$requirements" | cut -d' ' -f1)"
elif command -v shasum >/dev/null 2>&1; then
  digest="$(shasum -a 256 "$requirements" | cut -d' ' -f1)"
else
  digest="$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$requirements")"
fi
digest="${digest:0:12}"

# XDG says a relative XDG_CACHE_HOME is to be ignored.
cache_home="${XDG_CACHE_HOME:-}"
case "$cache_home" in
  /*) ;;
  *) cache_home="${HOME:?HOME is not set}/.cache" ;;
esac
cache_dir="$cache_home/nimbus"
venv="$cache_dir/venv-$digest"
python="$venv/bin/python"
marker="$venv/.nimbus-install-complete"
log="$venv/pip-install.log"

ready() {
  [ -f "$marker" ] && [ -x "$python" ] && "$python" -c '' >/dev/null 2>&1
}

# Fast path: a finished environment needs no lock and no pip.
if ready; then
  printf '%s\n' "$python"
  exit 0
fi

mkdir -p "$cache_dir"

# Serialise concurrent builders of the same environment when flock is available.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$venv.lock"
  flock 9
  if ready; then
    printf '%s\n' "$python"
    exit 0
  fi
fi

command -v python3 >/dev/null 2>&1 || die "python3 not found on PATH"

if [ -e "$venv" ]; then
  say "removing incomplete virtual environment $venv"
  rm -rf "$venv"
fi

say "creating virtual environment $venv"
if ! python3 -m venv "$venv" >&2; then
  rm -rf "$venv"
  die "python3 -m venv failed (on Debian/Ubuntu the python3-venv package provides it)"
fi

say "installing packages from scripts/requirements.txt (log: $log)"
if ! PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
  "$python" -m pip install --quiet --requirement "$requirements" >"$log" 2>&1; then
  say "pip install failed; last lines of $log:"
  tail -n 40 "$log" >&2 || true
  exit 1
fi

: >"$marker"
say "virtual environment ready"
printf '%s\n' "$python"
