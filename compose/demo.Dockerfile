# The demo workload for compose.yaml's `demo` profile: busybox httpd serving one page, FROM scratch with the
# host's static busybox (Debian's busybox-static), since no registry can be pulled from. `make demo-image`
# fills the build context: bin/busybox and www/index.html.
FROM scratch

ARG VERSION=dev
LABEL org.opencontainers.image.title="dockstate demo workload" \
      org.opencontainers.image.description="busybox httpd on port 8080, a small workload to watch dockstate heal." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0 AND GPL-2.0-only" \
      org.opencontainers.image.base.name="scratch"

COPY bin/busybox /bin/busybox
COPY www/ /www/

USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]

# A shell as PID 1 with a TERM trap, so `docker stop` (and the controller's stop) takes milliseconds instead of
# the 10 s grace period: PID 1 ignores signals it has no handler for, and httpd installs none.
CMD ["/bin/busybox", "sh", "-c", "trap 'exit 0' TERM INT; /bin/busybox httpd -f -p 8080 -h /www & wait"]
