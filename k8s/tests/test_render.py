"""The chart lints, renders with the real Helm engine, and every object validates against the
schemas of a current Kubernetes for each values file under k8s/tracker/ci/."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest

from chart import (
    CHART_DIR,
    KUBERNETES_VERSION,
    ci_values_files,
    find,
    kinds,
    load_values,
    manifests,
    render,
    tracker_container,
)

# kubernetes-validate ships the schemas of Kubernetes' own APIs only. The custom resources the
# chart renders (Prometheus Operator, Gateway API) are validated against schemas written from
# their upstream CRDs' openAPIV3Schema, kept in crd_schemas/ (the parts this chart renders).
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-gateway-v1.json",
}
SCHEMA_DIR = Path(__file__).resolve().parent / "crd_schemas"

VALUES_FILES = ci_values_files()
IDS = [path.stem for path in VALUES_FILES]


def validate_object(obj: dict[str, Any]) -> None:
    """Validates one object against Kubernetes' strict schema, or its CRD's schema."""
    crd_schema = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if crd_schema is None:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    else:
        schema = json.loads((SCHEMA_DIR / crd_schema).read_text())
        jsonschema.Draft202012Validator(schema).validate(obj)


def test_every_ci_configuration_is_present() -> None:
    assert set(IDS) == {
        "defaults-values",
        "tls-values",
        "geoip-updater-values",
        "autoscaling-external-redis-values",
        "bundled-redis-values",
        "ingress-gateway-values",
    }


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=IDS)
def test_lint_passes(values_file: Path) -> None:
    report = helm.lint(
        CHART_DIR, load_values(values_file), strict=True, kube_version=f"v{KUBERNETES_VERSION}"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=IDS)
def test_every_object_validates(values_file: Path) -> None:
    objects = manifests(load_values(values_file))
    assert {"Deployment", "Service", "ConfigMap"} <= kinds(objects)
    for obj in objects:
        try:
            validate_object(obj)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as error:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {error.message}")


def test_the_validators_refuse_a_broken_object() -> None:
    deployment = find(manifests({}), "Deployment")
    tracker_container(deployment)["ports"][0]["containerPort"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(deployment)
    route = find(manifests(load_values(CHART_DIR / "ci/ingress-gateway-values.yaml")), "HTTPRoute")
    route["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Glob"
    with pytest.raises(jsonschema.ValidationError):
        validate_object(route)


def test_defaults_are_hardened_and_drain_before_the_grace_period() -> None:
    objects = manifests({})
    assert kinds(objects) == {
        "ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service",
        "ServiceAccount",
    }
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    container = tracker_container(find(objects, "Deployment"))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert [c["topologyKey"] for c in pod["topologySpreadConstraints"]] == [
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    ]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop + 10 < pod["terminationGracePeriodSeconds"]  # 10: the shutdown-timeout
    assert container["args"] == ["--config", "/etc/tracker/tracker.toml"]
    annotations = find(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["tracker/open-files-needed"] == "1048576"


def test_tls_mounts_the_secret_and_probes_over_https() -> None:
    objects = manifests(load_values(CHART_DIR / "ci/tls-values.yaml"))
    deployment = find(objects, "Deployment")
    container = tracker_container(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "tracker-tls"
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/etc/tracker/tls"}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    endpoint = find(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https" and endpoint["path"] == "/metrics"


def test_geoip_updater_downloads_before_the_tracker_and_keeps_updating() -> None:
    objects = manifests(load_values(CHART_DIR / "ci/geoip-updater-values.yaml"))
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    (download,) = pod["initContainers"]
    updater = next(c for c in pod["containers"] if c["name"] == "geoipupdate")
    assert "GEOIPUPDATE_FREQUENCY" not in {e["name"] for e in download["env"]}
    assert {"name": "GEOIPUPDATE_FREQUENCY", "value": "24"} in updater["env"]
    license_key = next(e for e in updater["env"] if e["name"] == "GEOIPUPDATE_LICENSE_KEY")
    assert license_key["valueFrom"]["secretKeyRef"]["name"] == "maxmind-license"
    egress_ports = [p["port"] for rule in find(objects, "NetworkPolicy")["spec"]["egress"]
                    for p in rule.get("ports", [])]
    assert 443 in egress_ports


def test_autoscaling_scales_on_cpu_and_connections_with_alerts() -> None:
    objects = manifests(load_values(CHART_DIR / "ci/autoscaling-external-redis-values.yaml"))
    hpa = find(objects, "HorizontalPodAutoscaler")
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource", "Pods"]
    assert hpa["spec"]["metrics"][1]["pods"]["metric"]["name"] == "tracker_connections"
    assert "replicas" not in find(objects, "Deployment")["spec"]
    alerts = {r["alert"] for g in find(objects, "PrometheusRule")["spec"]["groups"]
              for r in g["rules"]}
    assert alerts == {
        "TrackerReplicaAtCapacity", "TrackerRedisUnreachable", "TrackerHighRefusalRate",
        "TrackerNoReadyReplica",
    }


def test_bundled_redis_is_reachable_from_the_tracker_pods_only() -> None:
    objects = manifests(load_values(CHART_DIR / "ci/bundled-redis-values.yaml"))
    statefulset = find(objects, "StatefulSet", "tracker-redis")
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"].startswith("redis:")
    policy = find(objects, "NetworkPolicy", "tracker-redis")
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert allowed["app.kubernetes.io/component"] == "tracker"


def test_ingress_keeps_idle_websockets_and_gateway_routes_to_the_service() -> None:
    objects = manifests(load_values(CHART_DIR / "ci/ingress-gateway-values.yaml"))
    ingress = find(objects, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) > 2 * 20
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"][0]["secretName"] == "tracker-example-com-tls"
    backend = find(objects, "HTTPRoute")["spec"]["rules"][0]["backendRefs"][0]
    service = find(objects, "Service")
    assert (backend["name"], backend["port"]) == ("tracker", service["spec"]["ports"][0]["port"])


def test_a_redis_url_from_a_secret_reaches_the_tracker_as_env() -> None:
    objects = manifests({"replicaCount": 2,
                         "redis": {"external": {"urlSecret": {"name": "redis", "key": "url"}}}})
    env = tracker_container(find(objects, "Deployment"))["env"]
    assert env == [{"name": "TRACKER_REDIS_URL",
                    "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}}}]
    assert "redis-url" not in find(objects, "ConfigMap")["data"]["tracker.toml"]


@pytest.mark.parametrize("values_file,announce_url", [
    ("defaults-values.yaml", "ws://tracker.video.svc:80/"),
    ("tls-values.yaml", "wss://tracker.video.svc:443/"),
    ("ingress-gateway-values.yaml", "wss://tracker.example.com/"),
])
def test_install_notes_print_the_announce_url(values_file: str, announce_url: str) -> None:
    notes = render(load_values(CHART_DIR / "ci" / values_file))["tracker/templates/NOTES.txt"]
    assert f"  {announce_url}" in notes


@pytest.mark.parametrize("kind,source", [
    ("secret", ("secret", "secretName")),
    ("configMap", ("configMap", "name")),
    ("persistentVolumeClaim", ("persistentVolumeClaim", "claimName")),
])
def test_geoip_databases_mount_from_an_existing_volume(kind: str, source: tuple[str, str]) -> None:
    objects = manifests({"geoip": {"mode": "existing", "existing": {"kind": kind, "name": "geo"}}})
    deployment = find(objects, "Deployment")
    for obj in objects:
        validate_object(obj)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    field, key = source
    assert volumes["geoip"][field][key] == "geo"
    toml = find(objects, "ConfigMap")["data"]["tracker.toml"]
    assert 'geoip-asn = "/var/lib/geoip/GeoLite2-ASN.mmdb"' in toml
    assert 'geoip-location = "/var/lib/geoip/GeoLite2-City.mmdb"' in toml
    mounts = {m["name"]: m for m in tracker_container(deployment)["volumeMounts"]}
    assert mounts["geoip"] == {"name": "geoip", "mountPath": "/var/lib/geoip", "readOnly": True}


def test_the_packaged_chart_renders_and_leaves_the_test_values_out(tmp_path: Path) -> None:
    archive = helm.package(CHART_DIR, destination=tmp_path)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "tracker/values.schema.json" in names
    assert not [name for name in names if name.startswith("tracker/ci/")]
    with helm.Chart.load(archive) as chart:
        rendered = chart.render({}, name="tracker", namespace="video")
    assert "tracker/templates/deployment.yaml" in rendered
