#!/usr/bin/env bash
# OS packages the tests use: Chromium renders the HTML run report headless; MariaDB serves the MySQL
# ML Metadata tests and PostgreSQL the Airflow scheduler test's database (the tests start their own
# servers). Idempotent: a no-op when already installed; without root or apt-get it says so and exits 0
# (the tests that need them then skip).
set -euo pipefail

missing=()
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  missing+=(chromium)
fi
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  missing+=(mariadb-server)
fi
# Debian keeps PostgreSQL's server programs off PATH, in /usr/lib/postgresql/<major>/bin.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: apt-get not found; install ${missing[*]} by hand for the tests that use them." >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "note: not root; install ${missing[*]} by hand (apt-get install ${missing[*]}) for the tests." >&2
    exit 0
  fi
fi
echo "Installing ${missing[*]} (for the report's browser test, the MySQL metadata tests and the Airflow test)..."
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/install_os_packages.log 2>&1; then
  tail -20 /tmp/install_os_packages.log >&2
  echo "note: installing ${missing[*]} failed (log above); the tests that need them will skip." >&2
fi
