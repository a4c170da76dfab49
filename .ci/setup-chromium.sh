#!/usr/bin/env bash
# A real headless browser for tests/harness/test_report_html.py, which loads the HTML report at
# 1400 px and checks that every image loaded and nothing overflows: Chromium from Debian.
set -euo pipefail
if ! command -v chromium >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { echo "setup-chromium: installing chromium needs root" >&2; exit 1; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
chromium --version
