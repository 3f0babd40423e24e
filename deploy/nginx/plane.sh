#!/bin/sh
# The nginx plane in a container. `run`: render nginx.conf from the route file, test it, run nginx in the
# foreground. `reload` (docker compose exec proxy deploy/nginx/plane.sh reload): render, test and reload
# after a route file edit; a refused config leaves the running one serving.
set -eu
routes="${STRANGLER_ROUTES:?path of the route file}"
runtime="${NGINX_RUNTIME_DIR:-/var/lib/strangler/nginx}"
listen="${PROXY_LISTEN:-0.0.0.0:8080}"
hosts="${PROXY_HOSTS:-*}"
case "${1:-run}" in
  run)
    mkdir -p "$runtime"
    strangler-proxy render-nginx --routes "$routes" --listen "$listen" --hosts "$hosts" --runtime-dir "$runtime" \
      --out "$runtime/nginx.conf"
    nginx -t -q -p "$runtime/" -e "$runtime/error.log" -c "$runtime/nginx.conf"
    exec nginx -p "$runtime/" -e "$runtime/error.log" -c "$runtime/nginx.conf" -g 'daemon off;'
    ;;
  reload)
    exec strangler-proxy nginx-reload --routes "$routes" --listen "$listen" --hosts "$hosts" --runtime-dir "$runtime"
    ;;
  *)
    echo "usage: $0 [run|reload]" >&2
    exit 2
    ;;
esac
