# Passgate: the wheel in a virtual environment on python:3.11-slim. Runs as PUID:PGID (default
# 1000:1000): the container starts as root only long enough for docker/run-as-puid to give
# /app/data to those ids, then setpriv drops every privilege before Passgate starts.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN python -m venv /opt/passgate \
 && /opt/passgate/bin/pip install --no-cache-dir . \
 && /opt/passgate/bin/pip uninstall -y pip setuptools

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/app \
    DATA_DIR=/app/data HOST=0.0.0.0 PORT=1411 PUID=1000 PGID=1000
COPY --from=build /opt/passgate /opt/passgate
COPY docker/run-as-puid /usr/local/bin/run-as-puid
# `passgate` (serve, the health check, and every `docker compose exec passgate passgate ...`)
# always goes through run-as-puid, so nothing in /app/data is ever written by root.
RUN printf '#!/bin/sh\nexec run-as-puid /opt/passgate/bin/passgate "$@"\n' > /usr/local/bin/passgate \
 && chmod 0755 /usr/local/bin/passgate /usr/local/bin/run-as-puid \
 && mkdir -p /app/data
WORKDIR /app
EXPOSE 1411
VOLUME ["/app/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["passgate", "healthcheck"]
ENTRYPOINT ["passgate"]
CMD ["serve"]
