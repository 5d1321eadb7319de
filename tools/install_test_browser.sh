#!/usr/bin/env bash
# Installs the browser the audit report's test loads the report in: Debian's chromium and
# chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver). Part of the README's test
# command and .ci/run, which then run pytest with ANNOTATE_REQUIRE_BROWSER=1, so the browser
# test fails instead of skipping when the browser is missing.
#
# Does nothing when both are already installed. Without apt-get (not Debian/Ubuntu) it only
# prints a note: install Chromium and its chromedriver at the paths above by other means, or
# run `python -m pytest -q` without ANNOTATE_REQUIRE_BROWSER to let the browser test skip.
# Takes about 1 to 1.5 min on a fresh Debian 12 machine (apt-get update included).
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_test_browser: no apt-get; install chromium and chromedriver at /usr/bin yourself" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
start=$(date +%s)
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "install_test_browser: chromium and chromium-driver installed in $(( $(date +%s) - start )) s" >&2
