# syntax=docker/dockerfile:1
# Multi-stage: build a wheel with its dependencies, then a slim runtime as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/hh-opsbot
COPY pyproject.toml README.md alembic.ini ./
COPY bot ./bot
COPY cogs ./cogs
COPY migrations ./migrations
RUN /opt/hh-opsbot/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/hh-opsbot/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN groupadd --system hh && useradd --system --gid hh --home-dir /var/lib/hh-opsbot --create-home hh
COPY --from=build /opt/hh-opsbot /opt/hh-opsbot
ENV PATH=/opt/hh-opsbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HH_CONFIG=/etc/hh-opsbot/config.toml \
    HH_DATABASE__URL=sqlite+aiosqlite:////var/lib/hh-opsbot/hh-opsbot.db \
    HH_WEB__HOST=0.0.0.0 \
    HH_LOGGING__FORMAT=json
USER hh
WORKDIR /var/lib/hh-opsbot
VOLUME ["/var/lib/hh-opsbot"]
# 8085: /healthz, /metrics and Alertmanager's webhook.
EXPOSE 8085
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8085/healthz', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["hh-opsbot"]
CMD ["run"]
