"""The chart's documentation and schema match its values, the values reach every tracker setting,
and the Dockerfile passes hadolint."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

from chart import CHART_DIR, K8S_DIR, REPO_ROOT
from test_tracker_starts import tracker_help

VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
# Settings of the tracker's Redis scale-out, which a tracker built without it lacks.
REDIS_SETTINGS = {"redis-url", "redis-password-file", "redis-cluster", "redis-heartbeat-interval",
                  "redis-candidates", "redis-timeout-ms"}


def leaves(values: Any, schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, default) of every value, down to where the schema stops naming properties."""
    if "properties" in schema and isinstance(values, dict):
        assert set(values) <= set(schema["properties"]), f"{prefix}: keys not in the schema"
        for key, value in values.items():
            yield from leaves(value, schema["properties"][key], f"{prefix}{key}.")
    else:
        yield prefix[:-1], values


def schema_leaves(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, sub in schema.get("properties", {}).items():
        if "properties" in sub:
            yield from schema_leaves(sub, f"{prefix}{key}.")
        else:
            yield prefix + key


def readme_values_table() -> dict[str, str]:
    """Key to default cell of the values table in k8s/README.md."""
    text = (K8S_DIR / "README.md").read_text()
    rows = re.findall(r"^\| `([A-Za-z0-9.\-]+)` \| `(.*)` \| .* \|$", text, re.MULTILINE)
    return dict(rows)


def test_readme_values_table_matches_values_yaml() -> None:
    table = readme_values_table()
    defaults = {key: json.dumps(value, separators=(", ", ": ")) for key, value in
                leaves(VALUES, SCHEMA)}
    assert sorted(table) == sorted(defaults)
    for key, default in defaults.items():
        assert table[key] == default, key


def test_schema_covers_every_value_and_every_value_has_a_default() -> None:
    values = {key for key, _ in leaves(VALUES, SCHEMA)}
    schema = set(schema_leaves(SCHEMA)) - {"global"}
    assert values == schema


def test_every_tracker_setting_is_a_config_key() -> None:
    flags = set(re.findall(r"^\s+(?:-\w, )?--([a-z][a-z0-9-]+)", tracker_help(), re.MULTILINE))
    flags -= {"config", "help", "version"}
    assert set(VALUES["config"]) == flags | REDIS_SETTINGS


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    dockerfile = REPO_ROOT / "tracker/Dockerfile"
    result = subprocess.run([hadolint, dockerfile], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = subprocess.run([hadolint, "-"], input="FROM debian\nRUN cd /tmp && ls\n",
                            capture_output=True, text=True)
    assert broken.returncode != 0 and "DL3006" in broken.stdout


def test_config_defaults_are_the_trackers_own() -> None:
    """values.yaml repeats the tracker's defaults (null leaves one to the tracker), except where
    the chart chooses otherwise."""
    chosen = {"log-format": "json"}
    blocks = re.split(r"^\s+--(?=[a-z])", tracker_help(), flags=re.MULTILINE)[1:]
    defaults = {}
    for block in blocks:
        default = re.search(r"\[default: ([^\]]+)\]", block)
        if default:
            defaults[block.split()[0]] = default.group(1)
    assert len(defaults) > 20, defaults
    for key, default in defaults.items():
        value = VALUES["config"][key]
        if value is None:
            continue
        if key in chosen:
            assert value == chosen[key]
        elif isinstance(value, (int, float)):
            assert value == float(default), key
        else:
            assert value == default, key
