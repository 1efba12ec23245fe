# hookfleet: one image holding every binary; each container picks its
# service by command (see docker-compose.yml):
#
#   hookfleet-ingest | hookfleet-analytics | hookfleet-alerts | hookfleet-crm
#   hookfleet infra apply | hookfleet dlq list | hookfleet status | ...
#
#   docker build -t hookfleet .
#
# Works with BuildKit and with the classic builder (docker-compose 1.29
# uses the latter by default), so no cache mounts and no heredocs: the
# dependencies are cached in their own layer by building them first against
# a skeleton of the workspace (every manifest, the lock file, stub sources),
# which changes only when a manifest or the set of target files does.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- planner: the workspace skeleton, derived from the sources ----------------
FROM ${RUST_IMAGE} AS planner
WORKDIR /src
COPY . .
# For every package: its Cargo.toml, and a stub for each file a target may
# start from: src/lib.rs, src/main.rs, src/bin/*, build.rs, the top level of
# tests/, benches/ and examples/ (and their */main.rs), and explicit `path =`
# files. Stubs are `fn main() {}` where the real file has a main function,
# empty otherwise. Module files are left out, so adding one keeps the cache.
RUN set -eu; \
    mkdir /skeleton; \
    cp Cargo.lock /skeleton/; \
    for manifest in $(find . -name Cargo.toml -not -path './target/*' | sort); do \
      dir=$(dirname "$manifest"); \
      mkdir -p "/skeleton/$dir"; \
      cp "$manifest" "/skeleton/$manifest"; \
      grep -q '^\[package\]' "$manifest" || continue; \
      explicit=$(sed -n 's/^[[:space:]]*path[[:space:]]*=[[:space:]]*"\([^"]*\.rs\)".*/\1/p' "$manifest"); \
      for file in $(cd "$dir" && find . -name '*.rs' -not -path './target/*' | sed 's|^\./||' | sort); do \
        case "$file" in \
          src/lib.rs | src/main.rs | build.rs | src/bin/*) keep=1 ;; \
          tests/*/main.rs | benches/*/main.rs | examples/*/main.rs) keep=1 ;; \
          tests/*/* | benches/*/* | examples/*/*) keep=0 ;; \
          tests/*.rs | benches/*.rs | examples/*.rs) keep=1 ;; \
          *) keep=0 ;; \
        esac; \
        if printf '%s\n' $explicit | grep -qxF "$file"; then keep=1; fi; \
        [ "$keep" = 1 ] || continue; \
        mkdir -p "$(dirname "/skeleton/$dir/$file")"; \
        if grep -q 'fn main' "$dir/$file"; then \
          echo 'fn main() {}' > "/skeleton/$dir/$file"; \
        else \
          : > "/skeleton/$dir/$file"; \
        fi; \
      done; \
    done

# --- builder: dependencies first (cached), then the workspace -----------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY --from=planner /skeleton/ ./
RUN cargo build --release --locked --bins
COPY . .
# The copied sources keep their own modification times, which may be older
# than the stubs' build: touch them so cargo rebuilds every workspace crate
# instead of shipping the stubs.
RUN find crates tests -type f -exec touch {} + \
 && cargo build --release --locked --bins

# --- runtime -------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="hookfleet" \
      org.opencontainers.image.description="Tolinku webhooks fanned out through SNS and SQS to analytics, alerts and CRM workers" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 hookfleet \
 && useradd --system --uid 10001 --gid hookfleet --home-dir /var/lib/hookfleet \
      --create-home --shell /usr/sbin/nologin hookfleet

COPY --from=builder \
     /src/target/release/hookfleet \
     /src/target/release/hookfleet-ingest \
     /src/target/release/hookfleet-analytics \
     /src/target/release/hookfleet-alerts \
     /src/target/release/hookfleet-crm \
     /usr/local/bin/
COPY infra/docker/healthcheck /usr/local/bin/hookfleet-healthcheck
COPY infra/topology.toml /etc/hookfleet/topology.toml

ENV HOOKFLEET_TOPOLOGY=/etc/hookfleet/topology.toml \
    HOOKFLEET_LOG_FORMAT=json

# Numeric, so that orchestrators can verify runAsNonRoot. The home
# directory is where a worker without DATABASE_URL keeps its SQLite file.
USER 10001:10001
WORKDIR /var/lib/hookfleet

# Ingest's HTTP port, and the workers' admin ports as in infra/topology.toml.
EXPOSE 8080 9101 9102 9103

# GET /healthz on HOOKFLEET_ADMIN_LISTEN (workers) or HOOKFLEET_LISTEN
# (ingest); see infra/docker/healthcheck.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["hookfleet-healthcheck"]

CMD ["hookfleet", "--help"]
