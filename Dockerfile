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

# slim has no curl: GET /healthz on $PORT with urllib, exit 0 only on HTTP 200 (connection
# errors and non-2xx statuses raise, exiting 1). The empty ProxyHandler keeps an inherited
# HTTP(S)_PROXY from routing 127.0.0.1 through a proxy. lumabot serves /healthz on $PORT in
# both modes (in Socket Mode that port serves nothing else).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; r = u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4); sys.exit(0 if r.status == 200 else 1)"]

CMD ["lumabot", "run"]
