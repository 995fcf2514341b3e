#!/bin/sh
# The image's entry point: `operator serve` from the installation this script sits in (PREFIX/libexec),
# on LISTEN_HOST (0.0.0.0) and PORT (8000), with WORKERS workers (1; more need REDIS_URL). Arguments are
# passed on to `operator serve`. Everything else comes from the settings' own variables (OPERATOR_CONFIG,
# TWILIO_*, REDIS_URL, DATABASE_URL ...). exec: the server is the process the engine signals.
set -eu
prefix=$(cd "$(dirname "$0")/.." && pwd)
exec "$prefix/bin/operator" serve --host "${LISTEN_HOST:-0.0.0.0}" --port "${PORT:-8000}" \
  --workers "${WORKERS:-1}" "$@"
