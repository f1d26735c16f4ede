# syntax=docker/dockerfile:1.7
#
# One image carrying every orderflow binary (ingress, user-service,
# projector, schema-registry, and each domain service as it arrives): one
# build of the workspace, one tag to promote from test to production, and
# the process is chosen by the command (`docker run IMAGE user-service`,
# `command:` in docker-compose.yml and the Helm chart). The binaries share
# nearly all their code, so separate images would only multiply build time
# and registry storage for the same bytes.
#
#   docker build -t orderflow:dev .
#
# Needs BuildKit (the default builder of current Docker): the cache mounts
# below keep the cargo registry and the target directory between builds, so
# a change to one service recompiles that crate, not the ~400 dependencies.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ------------------------------------------------------------------ build
# The full rust image (buildpack-deps) already has what the -sys crates
# need: gcc/g++, make and bash for librdkafka's own configure (rdkafka is
# built from its bundled source with the `libz` and `ssl` features, linked
# statically), pkg-config with libssl-dev (librdkafka's TLS/SCRAM, and
# native-tls for the registry client and sqlx) and zlib1g-dev. None of it
# reaches the runtime image.
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .
# Every workspace binary except the benchmark's load generator and the
# operator's CLI, which are not deployed processes. The list of what was built comes from cargo itself, so
# a new service binary lands in the image without editing this file.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    set -eu; \
    cargo build --release --locked --workspace --exclude orderflow-loadgen --exclude orderflow-cli --bins \
        --message-format=json-render-diagnostics > /tmp/build.json; \
    mkdir -p /out; \
    grep -o '"executable":"[^"]*"' /tmp/build.json | cut -d'"' -f4 | sort -u \
        | while read -r bin; do cp "$bin" /out/; done; \
    ls -l /out; \
    test -x /out/ingress

# ---------------------------------------------------------------- console
# The console's static files (console/, `npm run build`), which the
# ingress serves at /console (console.dir; the chart and compose set it).
FROM node:20-bookworm-slim AS console
WORKDIR /console
COPY console/package.json console/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY console/ ./
RUN npm run build

# ---------------------------------------------------------------- runtime
# Only what the binaries link dynamically besides glibc: OpenSSL
# (libssl3) and the CA bundle for TLS to Kafka, Postgres and the registry.
# zlib and libgcc are part of the base image. No shell tools are added: the
# docker-compose health checks use bash's /dev/tcp, which the base has.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# Debian's stable release only takes security fixes, so the newest
# version of each package is the one to have; pinning exact versions would
# break the build the day a fixed one replaces it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it without a
# passwd lookup; no home directory and no login shell.
RUN groupadd --system --gid 10001 orderflow \
    && useradd --system --uid 10001 --gid orderflow --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin orderflow
COPY --from=build /out/ /usr/local/bin/
COPY --from=console /console/dist/ /usr/share/orderflow/console/
USER 10001:10001
# The binaries keep no state on disk: the image runs with a read-only root
# filesystem. Each process's port is its own setting (ORDERFLOW_HTTP__ADDR).
EXPOSE 8080
CMD ["ingress"]
