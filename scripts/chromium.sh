#!/usr/bin/env bash
# Prints the absolute path of a headless-capable Chromium binary, for the browser tests.
#
# When neither `chromium` nor `chromium-browser` is on PATH, installs Debian's `chromium`
# package (no recommends: the browser alone, no fonts or desktop integration the tests do not
# need), through sudo only when not already root. Quiet and quick once installed: the only
# output is the path on stdout. When it cannot install, prints one line saying why on stderr
# and exits 3, so a caller can tell "no browser here" (skip) from a real failure.
set -uo pipefail

find_chromium() {
  local name path
  for name in chromium chromium-browser; do
    # `command -v` also reports a file without the execute bit; only a runnable one counts.
    if path="$(command -v "$name" 2>/dev/null)" && [ -x "$path" ]; then
      printf '%s\n' "$path"
      return 0
    fi
  done
  return 1
}

if find_chromium; then
  exit 0
fi

cannot() { printf 'chromium.sh: cannot install chromium: %s\n' "$*" >&2; exit 3; }

command -v apt-get >/dev/null 2>&1 || cannot "apt-get not found (not a Debian-like system); install chromium by hand"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  # -n: never prompt for a password, a test run has no terminal to type it into.
  as_root=(sudo -n)
else
  cannot "not root and sudo is not available without a password"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
printf 'chromium.sh: installing chromium with apt-get (once)\n' >&2
# An update first: on a fresh machine the package lists may be empty or stale, and the
# install would then fail to find the package or fetch a version no longer on the mirror.
if ! ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1; then
  cannot "apt-get update failed: $(tail -n 1 "$log")"
fi
if ! ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends chromium >"$log" 2>&1; then
  cannot "apt-get install chromium failed: $(tail -n 1 "$log")"
fi
find_chromium || cannot "the chromium package installed but no chromium binary is on PATH"
