# Gavel: one `gavel serve` process, embedded SQLite by default (set GAVEL_DATABASE_URL for
# PostgreSQL). Build: docker build -t gavel .   Run: docker run -p 50051:50051 -v gavel:/var/lib/gavel gavel
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GAVEL_DATA_DIR=/var/lib/gavel \
    GAVEL_RULES=/etc/gavel/rules \
    GAVEL_GRPC_ADDR=0.0.0.0:50051 \
    GAVEL_HTTP_ADDR=0.0.0.0:8080
RUN useradd --system --uid 10001 --home-dir /var/lib/gavel --shell /usr/sbin/nologin gavel \
    && install -d -o gavel -g gavel -m 0700 /var/lib/gavel
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY rules /etc/gavel/rules
USER gavel
VOLUME ["/var/lib/gavel"]
EXPOSE 50051 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["gavel", "health", "--addr", "127.0.0.1:50051"]
ENTRYPOINT ["gavel", "serve"]
