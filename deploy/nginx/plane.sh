#!/bin/sh
# The nginx plane in a container. `run`: render nginx.conf from the route file, test it and run nginx in the
# foreground, following the file: an edit is rendered, tested and reloaded within a second (a refused file leaves
# the running config serving), and the plane is registered in the planes registry ($STRANGLER_VAR_DIR/planes),
# answering the digest it serves on its admin listener, so plans in another container wait for it.
# `status` (docker compose exec proxy deploy/nginx/plane.sh status): does it serve the file as it is now?
set -eu
routes="${STRANGLER_ROUTES:?path of the route file}"
runtime="${NGINX_RUNTIME_DIR:-/var/lib/strangler/nginx}"
listen="${PROXY_LISTEN:-0.0.0.0:8080}"
hosts="${PROXY_HOSTS:-*}"
admin_listen="${PROXY_ADMIN_LISTEN:-0.0.0.0:8082}"
admin_url="${PROXY_ADMIN_URL:-http://127.0.0.1:8082}"
case "${1:-run}" in
  run)
    mkdir -p "$runtime"
    exec strangler-proxy nginx-run --routes "$routes" --listen "$listen" --hosts "$hosts" --runtime-dir "$runtime" \
      --admin-listen "$admin_listen" --admin-url "$admin_url"
    ;;
  status)
    exec strangler-proxy status --routes "$routes"
    ;;
  *)
    echo "usage: $0 [run|status]" >&2
    exit 2
    ;;
esac
