# vidgate in a container: `docker build -t vidgate .` then see docs/deploy.md.
# One image for every role: `vidgate serve` (the default: API and worker, embedded
# PostgreSQL and local storage under /data), `vidgate serve --no-worker` (API
# replicas) and `vidgate worker --metrics-port 9100` (workers), on an external
# PostgreSQL and S3 storage through the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A user of its own, never root: the embedded PostgreSQL runs as this user too
# (PostgreSQL refuses root), in /data.
RUN useradd --system --uid 10001 --user-group --home-dir /home/vidgate --create-home vidgate \
    && install -d -o vidgate -g vidgate -m 0750 /data

WORKDIR /opt/vidgate
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && rm -rf /opt/vidgate/src

USER vidgate
ENV VIDGATE_DATA_DIR=/data \
    VIDGATE_HOST=0.0.0.0 \
    VIDGATE_PORT=8000 \
    VIDGATE_LOG_JSON=true
VOLUME ["/data"]
EXPOSE 8000 9100

# Liveness only (/healthz answers while the process runs); readiness is /readyz, for
# the load balancer. Workers have no API port: compose checks their metrics port.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('VIDGATE_PORT', '8000'), timeout=2)" || exit 1

# SIGTERM (docker stop) shuts down gracefully; give `docker stop -t` more than the
# graceful shutdown's bound.
STOPSIGNAL SIGTERM
CMD ["vidgate", "serve"]
