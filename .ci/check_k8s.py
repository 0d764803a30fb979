#!/usr/bin/env python3
"""Checks the rendered k8s/ manifests for what the schemas cannot see: that every expected object is there and
that the properties the deployment promises hold (kubernetes-validate --strict checks the shapes).

usage: check_k8s.py RENDERED.yaml   (the output of `kubectl kustomize k8s`, or of a kustomization that adds the
                                   k8s/prometheus-operator component); exit 1 with every problem listed.
"""

import sys

import yaml

EXPECTED_KINDS = {
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "DaemonSet",
    "Service",
    "NetworkPolicy",
}
NAMESPACE = "dockstate"
CONTAINERS = {"status-api": 8080, "status-controller": 8000}
# The variable naming the host names each program answers to (besides IP addresses and localhost).
ALLOWED_HOSTS = {"status-api": "STATUS_API_ALLOWED_HOSTS", "status-controller": "STATUS_CONTROLLER_ALLOWED_HOSTS"}
SCRAPE = "prometheus.io/scrape"

problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


def selects(monitor, service):
    """Whether a ServiceMonitor (in the Service's namespace, the operator's default) selects the Service."""
    wanted = monitor["spec"].get("selector", {}).get("matchLabels", {})
    labels = service["metadata"].get("labels", {})
    return (
        bool(wanted)
        and wanted.items() <= labels.items()
        and monitor["metadata"].get("namespace") == service["metadata"].get("namespace")
    )


def main(path):
    with open(path, encoding="utf-8") as f:
        objects = [o for o in yaml.safe_load_all(f) if o]

    kinds = {o["kind"] for o in objects}
    check(EXPECTED_KINDS <= kinds, f"missing kinds: {sorted(EXPECTED_KINDS - kinds)}")
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
        if o["kind"] != "Namespace":
            check(
                o["metadata"].get("namespace") == NAMESPACE,
                f"{o['kind']}/{o['metadata']['name']} is not in namespace {NAMESPACE}",
            )

    for sa in by_kind.get("ServiceAccount", []):
        check(sa.get("automountServiceAccountToken") is False, "the ServiceAccount automounts its token")

    for secret in by_kind.get("Secret", []):
        check(
            not secret.get("data") and not secret.get("stringData"),
            f"Secret/{secret['metadata']['name']} carries data: a token must never be committed",
        )

    config_maps = {c["metadata"]["name"] for c in by_kind.get("ConfigMap", [])}
    settings = {}
    for config_map in by_kind.get("ConfigMap", []):
        settings.update(config_map.get("data", {}))
    allowed_hosts = {
        program: {name.strip().lower().rstrip(".") for name in settings.get(variable, "").split(",") if name.strip()}
        for program, variable in ALLOWED_HOSTS.items()
    }
    secrets = {s["metadata"]["name"] for s in by_kind.get("Secret", [])}
    daemonsets = by_kind.get("DaemonSet", [])
    check(len(daemonsets) == 1, f"expected one DaemonSet, found {len(daemonsets)}")
    template_labels = {}
    for ds in daemonsets:
        spec = ds["spec"]
        rolling = spec.get("updateStrategy", {})
        check(rolling.get("type") == "RollingUpdate", "the DaemonSet does not use RollingUpdate")
        # Two status-api on one node's state directory: the second waits for the lock, not ready, and a surge
        # that waits for readiness would stall the rollout. One pod per node at a time.
        check(
            rolling.get("rollingUpdate") == {"maxSurge": 0, "maxUnavailable": 1},
            f"the rollout may run two pods on one state directory: {rolling.get('rollingUpdate')}",
        )
        selector = spec["selector"]["matchLabels"]
        template_labels = spec["template"]["metadata"]["labels"]
        check("version" in selector, "the DaemonSet's selector has no `version` label")
        check(
            selector.items() <= template_labels.items(),
            "the DaemonSet's selector does not match its pod template",
        )
        pod = spec["template"]["spec"]
        check(pod.get("automountServiceAccountToken") is False, "the pod automounts a token")
        check(bool(pod.get("nodeSelector")), "the pod has no nodeSelector")
        pod_security = pod.get("securityContext", {})
        check(pod_security.get("runAsNonRoot") is True, "the pod may run as root")
        check(
            pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault",
            "the pod has no RuntimeDefault seccomp profile",
        )
        check(
            bool(pod_security.get("supplementalGroups")),
            "the pod has no supplemental group for the engine's socket",
        )
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        host_paths = {v["hostPath"]["path"] for v in volumes.values() if "hostPath" in v}
        check("/var/run/docker.sock" in host_paths, "the engine's socket is not mounted from the host")
        check(len(host_paths) >= 2, "the state is not on a host path")
        state_volumes = [
            v for v in volumes.values() if "hostPath" in v and v["hostPath"]["path"] != "/var/run/docker.sock"
        ]
        for volume in state_volumes:
            # DirectoryOrCreate makes a root-owned 0755 directory: not writable by 10001, so status-api has no
            # baseline and none can be taken. The directory is prepared per node, owned by 10001, mode 0700.
            check(
                volume["hostPath"].get("type") == "Directory",
                f"the state hostPath {volume['hostPath']['path']} is not of type Directory "
                f"(a directory the kubelet creates belongs to root)",
            )
        for volume in volumes.values():
            if "secret" in volume:
                name = volume["secret"]["secretName"]
                check(name in secrets, f"the pod mounts Secret/{name}, which is not rendered")
        # Each node's pair has a token of its own, on the node: a Secret would be one token for the whole fleet.
        for container in pod["containers"]:
            token_files = [e["value"] for e in container.get("env", []) if e["name"].endswith("_TOKEN_FILE")]
            check(bool(token_files), f"container {container['name']}: no token file")
            for token_file in token_files:
                mounts = [
                    m
                    for m in container.get("volumeMounts", [])
                    if token_file.startswith(m["mountPath"].rstrip("/") + "/")
                ]
                volume = volumes.get(mounts[0]["name"], {}) if mounts else {}
                check(
                    "hostPath" in volume and mounts[0].get("readOnly") is True,
                    f"container {container['name']}: the token {token_file} is not read-only from the node "
                    f"(a hostPath): {volume}",
                )
        # The Services carry the scrape annotations, one per port; on the pods too, status-api would be scraped
        # twice (a `kubernetes-pods` job beside `kubernetes-service-endpoints`) and fleet sums counted twice.
        pod_annotations = spec["template"]["metadata"].get("annotations", {})
        check(
            SCRAPE not in pod_annotations,
            "the pod template has scrape annotations: the Services' already scrape each port once",
        )

        containers = {c["name"]: c for c in pod["containers"]}
        check(
            set(containers) == set(CONTAINERS),
            f"containers {sorted(containers)}, expected {sorted(CONTAINERS)}",
        )
        for name, container in containers.items():
            where = f"container {name}"
            for probe, path in (
                ("startupProbe", "/health"),
                ("livenessProbe", "/health"),
                ("readinessProbe", "/ready"),
            ):
                got = container.get(probe, {}).get("httpGet", {}).get("path")
                check(got == path, f"{where}: {probe} is on {got}, expected {path}")
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                check(
                    {"cpu", "memory"} <= set(resources.get(bound, {})),
                    f"{where}: no cpu and memory {bound}",
                )
            security = container.get("securityContext", {})
            check(security.get("readOnlyRootFilesystem") is True, f"{where}: writable root filesystem")
            check(security.get("allowPrivilegeEscalation") is False, f"{where}: may escalate privileges")
            check(security.get("runAsNonRoot") is True, f"{where}: may run as root")
            check(
                security.get("capabilities", {}).get("drop") == ["ALL"],
                f"{where}: capabilities not all dropped",
            )
            check(
                security.get("seccompProfile", {}).get("type") == "RuntimeDefault",
                f"{where}: no RuntimeDefault seccomp profile",
            )
            ports = [p["containerPort"] for p in container.get("ports", [])]
            check(CONTAINERS.get(name) in ports, f"{where}: does not expose {CONTAINERS.get(name)}")
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef", {}).get("name")
                check(ref in config_maps, f"{where}: reads ConfigMap/{ref}, which is not rendered")
            # The controller's status-api URL must name a host status-api answers to, or every call is 421.
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            api_url = env.get("STATUS_CONTROLLER_API_URL") or settings.get("STATUS_CONTROLLER_API_URL")
            if api_url:
                host = api_url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]").lower()
                served = (
                    host == "localhost"
                    or host.endswith(".localhost")
                    or all(part.isdigit() for part in host.split("."))
                    or ":" in host
                    or host in allowed_hosts["status-api"]
                )
                check(served, f"{where}: calls status-api as {host}, which STATUS_API_ALLOWED_HOSTS does not list")

    services = by_kind.get("Service", [])
    monitors = by_kind.get("ServiceMonitor", [])
    for service in services:
        where = f"Service/{service['metadata']['name']}"
        spec = service["spec"]
        check(spec.get("clusterIP") == "None", f"{where} is not headless")
        selector = spec.get("selector", {})
        check("version" in selector, f"{where} does not select on `version`")
        check(
            selector.items() <= template_labels.items(),
            f"{where} selects no pod of the DaemonSet",
        )
        annotations = service["metadata"].get("annotations", {})
        # A client in the cluster that calls the Service by name must be answered, not refused 421.
        program = service["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        name = service["metadata"]["name"]
        if program in allowed_hosts:
            names = {name, f"{name}.{NAMESPACE}", f"{name}.{NAMESPACE}.svc"}
            missing = sorted(names - allowed_hosts[program])
            check(not missing, f"{where}: {ALLOWED_HOSTS[program]} does not list {missing}")
        monitored = [m for m in monitors if selects(m, service)]
        # Scraped one way, exactly: by its annotations or by a ServiceMonitor, never both (twice) or neither.
        check(
            (annotations.get(SCRAPE) == "true") != bool(monitored),
            f"{where}: scraped by annotation: {annotations.get(SCRAPE) == 'true'}, "
            f"by ServiceMonitors: {[m['metadata']['name'] for m in monitored]} (exactly one way is wanted)",
        )
        port_names = {p.get("name") for p in spec.get("ports", [])}
        if annotations.get(SCRAPE) == "true":
            port = annotations.get("prometheus.io/port")
            check(
                port in {str(p["port"]) for p in spec.get("ports", [])},
                f"{where}: the scrape port {port} is not one of its ports",
            )
        for monitor in monitored:
            scraped = {e.get("port") for e in monitor["spec"].get("endpoints", [])}
            check(
                port_names <= scraped,
                f"{where}: ServiceMonitor/{monitor['metadata']['name']} scrapes none of {sorted(port_names - scraped)}",
            )

    service_ports = {p.get("name") for s in services for p in s["spec"].get("ports", [])}
    for monitor in monitors:
        where = f"ServiceMonitor/{monitor['metadata']['name']}"
        check(any(selects(monitor, s) for s in services), f"{where} selects no Service")
        for endpoint in monitor["spec"].get("endpoints", []):
            check(
                endpoint.get("port") in service_ports,
                f"{where}: endpoint port {endpoint.get('port')} is no port of a Service",
            )
            check(
                endpoint.get("path") == "/metrics",
                f"{where}: endpoint {endpoint.get('port')} scrapes {endpoint.get('path')}, not /metrics",
            )
            # One pod per node: the node's name is what tells a fleet's series apart.
            check(
                any(
                    r.get("sourceLabels") == ["__meta_kubernetes_pod_node_name"] and r.get("targetLabel") == "node"
                    for r in endpoint.get("relabelings", [])
                ),
                f"{where}: endpoint {endpoint.get('port')} does not label its series with the `node`",
            )

    for policy in by_kind.get("NetworkPolicy", []):
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        check(
            bool(selector) and selector.items() <= template_labels.items(),
            "the NetworkPolicy does not select the DaemonSet's pods",
        )
        check(
            set(policy["spec"].get("policyTypes", [])) == {"Ingress", "Egress"},
            "the NetworkPolicy does not govern both directions",
        )

    if problems:
        for problem in problems:
            print(f"k8s: {problem}", file=sys.stderr)
        return 1
    print(f"k8s: {len(objects)} objects, kinds {sorted(kinds)}: every check passed")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
