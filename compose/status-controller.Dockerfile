# status-controller: FROM scratch with the statically linked release binary. Classic-builder syntax only (no
# BuildKit: the engine here may have no buildx and no registry). `make images` fills the build context:
#   status-controller   the static binary
#   etc/passwd, etc/group   the numeric user 10001 (dockstate)
#   state/              an empty directory, copied with --chown so /var/lib/status-controller belongs to 10001
#                       and a named volume mounted there starts out owned by it too. The controller keeps its
#                       maintenance hold and action journal there (--state-dir, set by compose and k8s, not by the
#                       image: without a writable volume the image works, and both end when the controller
#                       restarts).
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://example.invalid/dockstate

LABEL org.opencontainers.image.title="dockstate status-controller" \
      org.opencontainers.image.description="Heals drift between a Docker host and the snapshot status-api keeps." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="scratch" \
      dockstate.policy="ignore"

COPY etc/passwd etc/group /etc/
COPY --chown=10001:10001 state/ /var/lib/status-controller/
COPY status-controller /status-controller

ENV STATUS_CONTROLLER_LISTEN=0.0.0.0:8000

USER 10001:10001
EXPOSE 8000

# The binary probes its own /health on the --listen port (scratch has no curl).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/status-controller", "healthcheck"]

ENTRYPOINT ["/status-controller"]
