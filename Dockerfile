# The AudiFi chain indexer. Build: deploy/image.sh build (or docker build .).
#
# Two stages: the builder turns pyproject.toml into a wheel and installs it, with
# the dependencies pyproject.toml names, into /opt/venv; the runtime stage copies
# only that venv and the SQL migrations. No compiler, pip or pip cache reaches
# the final image.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY indexer ./indexer
# A TLS-intercepting proxy's CA can be handed in as the optional build secret "pip_ca"
# (deploy/image.sh passes $PIP_CERT); it is mounted for this step only, never stored.
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --quiet --upgrade pip \
 && /opt/venv/bin/pip wheel --quiet --no-deps --wheel-dir /tmp/wheels . \
 && /opt/venv/bin/pip install --quiet /tmp/wheels/audifi_indexer-*.whl \
 && /opt/venv/bin/pip uninstall --quiet --yes pip setuptools wheel \
 && rm -rf /tmp/wheels /root/.cache \
 && /opt/venv/bin/audifi-indexer --help >/dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="audifi-indexer" \
      org.opencontainers.image.description="Follows the AudiFi contracts on an Ethereum JSON-RPC node and writes them into PostgreSQL."
# A fixed numeric uid so that Kubernetes' runAsNonRoot can check it.
RUN groupadd --gid 10001 audifi \
 && useradd --uid 10001 --gid audifi --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin audifi
COPY --from=builder /opt/venv /opt/venv
COPY sql /opt/audifi/sql
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AUDIFI_MIGRATIONS_DIR=/opt/audifi/sql/migrations \
    AUDIFI_METRICS_HOST=0.0.0.0 \
    AUDIFI_METRICS_PORT=9108 \
    AUDIFI_LOG_FORMAT=json
WORKDIR /opt/audifi
USER 10001:10001
EXPOSE 9108
# /healthz answers 200 while the follower loop turns; urllib raises (exit 1) on 503.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('AUDIFI_METRICS_PORT', '9108') + '/healthz', timeout=4)"]
ENTRYPOINT ["audifi-indexer"]
CMD ["run"]
