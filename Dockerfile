# The project image: every process of docker-compose.yml (web, Celery, consumers, nginx plane, diff endpoint)
# runs from it with a different command. Configuration comes only from the environment.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# nginx for the traffic plane's production proxy (the `proxy` service); libpq comes with psycopg[binary].
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so code edits reuse this layer.
COPY pyproject.toml README.md ./
RUN mkdir -p servicekit strangler_proxy strangler_sync migrations_plan \
    && pip install ".[example]" && pip uninstall -y strangler-fig
COPY . .
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --home-dir /app app \
    && mkdir -p /var/lib/strangler \
    && chown app /var/lib/strangler

# Named volume `strangler-state`: ownership file, nginx runtime dir, Celery beat schedules.
ENV STRANGLER_VAR_DIR=/var/lib/strangler
# The toolkit is installed; the storefront example (monolith, extracted, deploy) is not in its wheel and is
# imported from here.
ENV PYTHONPATH=/app
USER app
EXPOSE 8000 8001 8002 8003 8080 8790
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", "0.0.0.0:8000", "deploy.monolith_wsgi:application"]
