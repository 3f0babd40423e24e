"""Gunicorn settings shared by every web container (the bind address is on each command line).

WEB_CONCURRENCY (worker processes) is read by gunicorn itself; WEB_THREADS sets threads per worker.
"""

import os

worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = 30  # the proxy's route timeouts stay below this, so nginx/mitmproxy answer first
graceful_timeout = 20  # SIGTERM from `docker compose stop`: finish requests in flight
keepalive = 5  # nginx keeps upstream connections open (`keepalive` in its upstream blocks)
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = "*"  # only the proxy reaches these ports (compose network)
