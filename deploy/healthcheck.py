"""Container health check: exit 0 when the URL answers 2xx within 3 s (the slim image has no curl).

    python deploy/healthcheck.py http://127.0.0.1:8000/readyz
"""

import sys
import urllib.request

if __name__ == "__main__":
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=3) as response:
            sys.exit(0 if 200 <= response.status < 300 else 1)
    except Exception as exc:  # any failure is "unhealthy"; say why for `docker inspect`
        print(f"unhealthy: {exc}", file=sys.stderr)
        sys.exit(1)
