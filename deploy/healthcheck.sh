#!/bin/sh
# The image's HEALTHCHECK: healthy while the bot answers GET /healthz on 127.0.0.1:PORT (8000) within 4 s.
# /healthz, not /readyz: a backend that is down is reported by /readyz, and is no reason to restart the bot.
# The slim image has no curl: the installation's own Python asks.
prefix=$(cd "$(dirname "$0")/.." && pwd)
exec "$prefix/bin/python" -I -c '
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
' "${PORT:-8000}"
