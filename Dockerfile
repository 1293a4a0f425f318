# syntax=docker/dockerfile:1
# lumabot: Slack app (Socket Mode by default, HTTP mode when configured) on Luma's image models.
#
#   docker build -t lumabot .
#   docker run --env-file .env -v lumabot-data:/data -p 3000:3000 lumabot
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Non-root runtime user.
RUN groupadd --system lumabot \
 && useradd --system --gid lumabot --home-dir /home/lumabot --create-home \
            --shell /usr/sbin/nologin lumabot

# Install the project (README.md is the package's readme in pyproject.toml, so it is needed).
COPY pyproject.toml README.md LICENSE ./
COPY lumabot/ ./lumabot/
RUN pip install --no-cache-dir . \
 && rm -rf /app/build /app/*.egg-info

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
