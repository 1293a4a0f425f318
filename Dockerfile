# syntax=docker/dockerfile:1
# lumabot: Slack app (Socket Mode by default, HTTP mode when configured) on Luma's image models.
#
#   docker build -t lumabot .
#   docker run --env-file .env -v lumabot-data:/data -p 3000:3000 lumabot
#
# The base image is an ARG: pin it by version and digest for reproducible images, e.g.
#   docker build --build-arg PYTHON_IMAGE=python:3.11.7-slim-bookworm@sha256:<digest> -t lumabot .
# (`docker buildx imagetools inspect python:3.11.7-slim-bookworm` prints the digest.)
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# -- build: exactly the locked dependencies (hashes checked), then lumabot itself, in a venv ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.txt ./
RUN python -m venv /opt/lumabot \
 && /opt/lumabot/bin/pip install --no-cache-dir --require-hashes -r requirements.txt
# README.md is the package's readme and LICENSE its license file in pyproject.toml.
COPY pyproject.toml README.md LICENSE ./
COPY lumabot/ ./lumabot/
RUN /opt/lumabot/bin/pip install --no-cache-dir --no-deps .

# -- runtime: the venv only (no build tools, no sources), as a non-root user --------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/lumabot/bin:$PATH
RUN groupadd --system lumabot \
 && useradd --system --gid lumabot --home-dir /home/lumabot --create-home \
            --shell /usr/sbin/nologin lumabot
COPY --from=build /opt/lumabot /opt/lumabot
WORKDIR /home/lumabot

# SQLite database on a volume owned by the runtime user. The directory is created and chowned
# before VOLUME: changes made to a volume path after its VOLUME line are discarded.
RUN mkdir -p /data && chown lumabot:lumabot /data
VOLUME /data
ENV LUMABOT_DATABASE_URL=sqlite:////data/lumabot.db \
    PORT=3000

USER lumabot

# HTTP mode serves /slack/events (and /healthz) on $PORT.
EXPOSE 3000

# `lumabot healthcheck` reads the same configuration as `lumabot run` and GETs /healthz where
# that configuration serves it (PORT, or LUMABOT_METRICS_PORT in Socket Mode): exit 0 only on
# HTTP 200 (503 while starting, or in Socket Mode while the websocket to Slack is not open).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["lumabot", "healthcheck"]

CMD ["lumabot", "run"]
