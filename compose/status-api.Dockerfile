# status-api: FROM scratch with the statically linked release binary. Classic-builder syntax only (no BuildKit:
# the engine here may have no buildx and no registry). `make images` fills the build context:
#   status-api          the static binary
#   etc/passwd, etc/group   the numeric user 10001 (dockstate), so tools that resolve names show one
#   state/              an empty directory, copied with --chown so the state dir belongs to 10001 (mode 0755)
#                       and a named volume mounted there starts out owned by it too. status-api refuses a
#                       state dir another user owns or its group or others can write (docs/safety.md): this
#                       one passes; a bind mount in its place must too (chown 10001, chmod 0700)
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://example.invalid/dockstate

LABEL org.opencontainers.image.title="dockstate status-api" \
      org.opencontainers.image.description="Watches a Docker engine and serves its live status, its baseline snapshot and the drift between them; never changes anything on the host." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="scratch" \
      dockstate.policy="ignore"

COPY etc/passwd etc/group /etc/
COPY --chown=10001:10001 state/ /var/lib/status-api/
COPY status-api /status-api

ENV STATUS_API_LISTEN=0.0.0.0:8080 \
    STATUS_API_STATE_DIR=/var/lib/status-api

USER 10001:10001
EXPOSE 8080

# The binary probes its own /health on the --listen port (scratch has no curl).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/status-api", "healthcheck"]

ENTRYPOINT ["/status-api"]
