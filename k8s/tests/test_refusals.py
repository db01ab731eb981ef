"""Wrong values are refused before anything reaches a cluster: by values.schema.json or by a
`fail` whose message says what to set."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from chart import CHART_DIR, render

REFUSED = {
    "three replicas without Redis": (
        {"replicaCount": 3},
        "more than one tracker replica needs Redis to share swarms; set redis.external.url",
    ),
    "autoscaling without Redis": (
        {"autoscaling": {"enabled": True}},
        "set redis.external.url (or redis.external.urlSecret) to your Redis, or "
        "redis.bundled.enabled=true",
    ),
    "a negative timeout": (
        {"config": {"shutdown-timeout": -1}},
        "at '/config/shutdown-timeout': minimum: got -1, want 0",
    ),
    "an unknown key": ({"replicas": 3}, "additional properties 'replicas' not allowed"),
    "an unknown tracker setting": (
        {"config": {"max-peers": 5}},
        "at '/config': additional properties 'max-peers' not allowed",
    ),
    "a drain longer than the grace period": (
        {"config": {"shutdown-timeout": 40}},
        "preStopSleepSeconds (5) + config.shutdown-timeout (40) = 45 s must be below "
        "terminationGracePeriodSeconds (30)",
    ),
    "an ingress without trusted proxies": (
        {"ingress": {"enabled": True}},
        "set config.trusted-proxies to the networks of the ingress controller",
    ),
    "an ingress timeout below the ping interval": (
        {"ingress": {"enabled": True, "websocketTimeoutSeconds": 30},
         "config": {"trusted-proxies": ["10.0.0.0/8"]}},
        "ingress.websocketTimeoutSeconds (30) must exceed 40 s",
    ),
    "more connections than open files": (
        {"config": {"max-connections": 70000}, "openFiles": 65536},
        "config.max-connections (70000) needs more open files than openFiles (65536) allows "
        "(63488 connections",
    ),
    "TLS without a Secret": ({"tls": {"enabled": True}}, "set tls.secretName"),
    "a GeoIP updater without a license": (
        {"geoip": {"mode": "updater"}},
        "set geoip.updater.secretName",
    ),
    "two Redis at once": (
        {"redis": {"bundled": {"enabled": True}, "external": {"url": "redis://r:6379"}}},
        "redis.bundled.enabled and redis.external are both set",
    ),
    "a Redis URL of another scheme": (
        {"redis": {"external": {"url": "http://r:6379"}}},
        "at '/redis/external/url'",
    ),
}


@pytest.mark.parametrize("values,message", REFUSED.values(), ids=REFUSED.keys())
def test_wrong_values_are_refused_with_a_clear_message(values: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(helm.HelmError) as refused:
        render(values)
    assert message in str(refused.value)


def test_lint_reports_a_schema_violation() -> None:
    report = helm.lint(CHART_DIR, {"replicas": 3}, strict=True)
    refusal = "additional properties 'replicas' not allowed"
    assert any(refusal in error for error in report["errors"]), report


def test_the_same_settings_are_accepted_where_they_fit() -> None:
    render({"replicaCount": 3, "redis": {"external": {"url": "redis://r:6379"}}})
    render({"config": {"shutdown-timeout": 40}, "terminationGracePeriodSeconds": 60})
    render({"config": {"max-connections": 63488}, "openFiles": 65536})
