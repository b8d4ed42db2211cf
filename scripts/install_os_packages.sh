#!/usr/bin/env bash
# OS packages the tests use: Chromium renders the HTML run report headless. Idempotent: a no-op when
# already installed; without root or apt-get it says so and exits 0 (the browser test then skips).
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: apt-get not found; install Chromium by hand for the report's browser test." >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "note: not root; install Chromium by hand (apt-get install chromium) for the browser test." >&2
    exit 0
  fi
fi
echo "Installing Chromium (headless browser for the report test)..."
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium; } >/tmp/install_os_packages.log 2>&1; then
  tail -20 /tmp/install_os_packages.log >&2
  echo "note: installing Chromium failed (log above); the browser test will skip." >&2
fi
