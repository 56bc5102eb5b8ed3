# The fsml image: the CLI, the scoring service and the MLflow UI, from uv.lock.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    FSML_HOME=/data \
    PATH="/app/.venv/bin:$PATH"

RUN pip install --no-cache-dir uv==0.13.9 \
    && apt-get update && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY fsml ./fsml
COPY features ./features
COPY training ./training
COPY serving ./serving
COPY monitoring ./monitoring
COPY cli ./cli
COPY examples ./examples
COPY feature_repo ./feature_repo
RUN uv sync --frozen --no-dev

# Runs as an unprivileged user; /data (FSML_HOME) is created owned by it, so a new named volume
# mounted there is writable.
RUN useradd --system --uid 10001 --create-home --shell /usr/sbin/nologin fsml \
    && mkdir -p /data && chown fsml:fsml /data
USER fsml

VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=5 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["fsml", "serve", "--host", "0.0.0.0", "--port", "8000"]
