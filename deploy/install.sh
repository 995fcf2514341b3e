#!/bin/sh
# Installs Operator into a virtual environment at PREFIX, with the scripts the image and the systemd unit
# run (PREFIX/libexec), and creates the state directory STATE_DIR if given:
#
#   deploy/install.sh PREFIX [STATE_DIR]          e.g. deploy/install.sh /opt/operator /var/lib/operator
#
# PREFIX is where it runs from (a virtual environment does not move). The Dockerfile's build stage runs
# this; so does an install for the systemd unit (README, "Deploying"). The Python is $PYTHON (python3).
# pip takes its usual settings from the environment: the tests run this offline, with PIP_NO_INDEX=1 and
# PIP_FIND_LINKS pointing at wheels of the packages already installed (tests/deploy).
set -eu
prefix=${1:?usage: deploy/install.sh PREFIX [STATE_DIR]}
state=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
source=$(dirname "$here")

"${PYTHON:-python3}" -m venv "$prefix"
"$prefix/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check "$source"
mkdir -p "$prefix/libexec"
cp "$here/entrypoint.sh" "$here/healthcheck.sh" "$prefix/libexec/"
chmod 0755 "$prefix/libexec/entrypoint.sh" "$prefix/libexec/healthcheck.sh"
if [ -n "$state" ]; then
  mkdir -p "$state"
fi
"$prefix/bin/operator" --version
