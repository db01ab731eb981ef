"""Renders the chart with the real Helm engine (helm-python-sdk embeds Helm's Go library)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

K8S_DIR = Path(__file__).resolve().parent.parent
CHART_DIR = K8S_DIR / "tracker"
REPO_ROOT = K8S_DIR.parent
KUBERNETES_VERSION = "1.37.0"
RELEASE = "tracker"
NAMESPACE = "video"


def ci_values_files() -> list[Path]:
    """The values files under k8s/tracker/ci/, each a configuration the tests render."""
    return sorted((CHART_DIR / "ci").glob("*-values.yaml"))


def load_values(path: Path) -> dict[str, Any]:
    """A values file as a dict (an empty document is {})."""
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict[str, Any]) -> dict[str, str]:
    """Template path to rendered text, as `helm template` would produce for an install."""
    with helm.Chart.load(CHART_DIR) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def manifests(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders with these values."""
    objects = []
    for path, text in render(values).items():
        if path.endswith(".yaml"):
            objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def find(objects: list[dict[str, Any]], kind: str, name: str = RELEASE) -> dict[str, Any]:
    """The one object of this kind and name."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> set[str]:
    """The kinds rendered."""
    return {o["kind"] for o in objects}


def tracker_container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The tracker container of the Deployment."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "tracker")


def config_toml(objects: list[dict[str, Any]]) -> str:
    """The tracker's TOML settings from the ConfigMap."""
    return find(objects, "ConfigMap")["data"]["tracker.toml"]
