# Bindle server image. Build and run:
#   docker build -t bindle-server .
#   docker run -p 127.0.0.1:8080:8080 -v bindle-data:/data -e BINDLE_UNAUTHENTICATED=true bindle-server
# (open to whoever reaches the published port; give credentials instead to publish it wider:
# see the README's Authentication section).
# Arguments after the image name go to the CLI, e.g. `docker run ... bindle-server reindex`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Runtime dependencies only (no dev extras); the sources are not needed once installed.
# EXTRAS adds optional backends, e.g. `--build-arg EXTRAS=s3,postgres` (the scale-out
# profile of docker-compose.yml); the default image has neither.
ARG EXTRAS=""
COPY pyproject.toml README.md /src/
COPY bindle_server /src/bindle_server
RUN pip install --no-cache-dir "/src${EXTRAS:+[$EXTRAS]}" \
    && rm -rf /src

# A fixed unprivileged uid/gid keeps volume ownership stable across rebuilds. /data is
# created and chowned before VOLUME, because build changes to a volume path after the
# VOLUME instruction are discarded; a new named volume copies this ownership.
RUN groupadd --system --gid 10001 bindle \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin bindle \
    && mkdir -p /data \
    && chown 10001:10001 /data

# The container listens on all of its interfaces, which the server refuses without
# authentication unless told so: `docker run` with credentials (a token file or htpasswd
# in /data), or with `-e BINDLE_UNAUTHENTICATED=true` to serve open on purpose. The image
# never opts in itself, so that `docker run -p 8080:8080` never publishes an open,
# writable registry; compose's loopback-published services opt in.
ENV BINDLE_IP_ADDRESS_PORT=0.0.0.0:8080 \
    BINDLE_DIRECTORY=/data

VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080

# The slim image has no curl, so the probe uses the standard library. urlopen raises on a
# refused connection, a timeout or an HTTP error status, and the uncaught error exits 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["bindle-server"]
