"""The rendered ConfigMap and env start the real `tracker` binary, whose probe endpoints then
answer 200: the chart's settings, paths, probes and ports are the ones the tracker knows and serves.

Each ci values file becomes a sandbox: every volume the tracker container mounts is a directory
filled as Kubernetes would fill it (the ConfigMap's TOML; a TLS Secret made with openssl; the
Secrets the values name, with test contents; the GeoIP emptyDir holding empty MaxMind databases,
standing in for geoipupdate's download, which cannot reach MaxMind here). Paths under the mounts are
mapped into the sandbox, `listen` moves to a free loopback port, and a Redis URL points at a real
`redis-server` started on another.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from chart import (
    REPO_ROOT,
    ci_values_files,
    config_toml,
    find,
    load_values,
    manifests,
    tracker_container,
)
from mmdb import write_empty_database

TRACKER_BIN = Path(os.environ.get("TRACKER_BIN", REPO_ROOT / "target/debug/tracker"))
# The Secrets the ci values files name, as the cluster would hold them.
SECRETS = {
    ("tracker-redis", "password"): "redis-test-password",
    ("maxmind-license", "account-id"): "000000",
    ("maxmind-license", "license-key"): "test-license-key",
}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tracker_help() -> str:
    if not TRACKER_BIN.exists():
        pytest.fail(f"{TRACKER_BIN} is missing: run `cargo build -p tracker --bin tracker` "
                    "(or set TRACKER_BIN)")
    return subprocess.run([TRACKER_BIN, "--help"], capture_output=True, text=True,
                          check=True).stdout


def fill_volume(volume: dict[str, Any], directory: Path, settings: dict[str, Any],
                mount_path: str) -> None:
    """Puts in `directory` what Kubernetes would mount from `volume`."""
    directory.mkdir(parents=True)
    if "secret" in volume and volume["name"] == "tls":
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
             "-keyout", directory / "tls.key", "-out", directory / "tls.crt"],
            check=True, capture_output=True)
    elif "secret" in volume:
        name = volume["secret"]["secretName"]
        for item in volume["secret"]["items"]:
            (directory / item["path"]).write_text(SECRETS[(name, item["key"])])
    elif "emptyDir" in volume and volume["name"] == "geoip":
        for key in ("geoip-asn", "geoip-location"):
            path = settings.get(key)
            if path is not None:
                assert path.startswith(mount_path + "/"), f"{key} {path} is outside {mount_path}"
                write_empty_database(directory / Path(path).name, f"test {key}")
    else:
        raise AssertionError(f"no sandbox for volume {volume}")


class Sandbox:
    """The tracker container's mounts as directories, and the mapping of paths into them."""

    def __init__(self, root: Path, deployment: dict[str, Any], settings: dict[str, Any]):
        self.mounts: dict[str, Path] = {}
        self.config_path = root / "tracker.toml"
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        for mount in tracker_container(deployment)["volumeMounts"]:
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                assert mount["subPath"] == "tracker.toml"
                self.mounts[mount["mountPath"]] = self.config_path
            else:
                directory = root / mount["name"]
                fill_volume(volume, directory, settings, mount["mountPath"])
                self.mounts[mount["mountPath"]] = directory

    def map_path(self, value: Any) -> Any:
        """A path inside a mount, as the sandbox path; any other value unchanged."""
        if isinstance(value, str):
            for mount_path, local in self.mounts.items():
                if value == mount_path or value.startswith(mount_path + "/"):
                    return str(local) + value[len(mount_path):]
        return value


def toml_text(settings: dict[str, Any]) -> str:
    """TOML for flat settings of strings, numbers and string lists (the chart's own shape)."""
    def value(item: Any) -> str:
        if isinstance(item, list):
            return "[" + ", ".join(value(v) for v in item) + "]"
        if isinstance(item, str):
            return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(item)
    return "".join(f"{key} = {value(item)}\n" for key, item in settings.items())


def with_local_host(url: str, port: int) -> str:
    return urlunsplit(urlsplit(url)._replace(netloc=f"127.0.0.1:{port}"))


def get(url: str) -> tuple[int, str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[[str | None], int]]:
    """Starts a real redis-server on a free loopback port, on demand; stops it after the test."""
    started: list[subprocess.Popen] = []

    def start(password: str | None) -> int:
        port = free_port()
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(tmp_path)]
        if password:
            command += ["--requirepass", password]
        started.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return port
            time.sleep(0.05)
        pytest.fail("redis-server did not start")

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def redis_clients(port: int, password: str | None) -> int:
    """Clients connected to the Redis on `port`, not counting the one asking."""
    auth = ["-a", password, "--no-auth-warning"] if password else []
    info = subprocess.run(["redis-cli", "-p", str(port), *auth, "info", "clients"],
                          capture_output=True, text=True, check=True).stdout
    count = next(line for line in info.splitlines() if line.startswith("connected_clients:"))
    return int(count.split(":")[1]) - 1


VALUES_FILES = ci_values_files()


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=[p.stem for p in VALUES_FILES])
def test_rendered_config_starts_the_tracker_and_its_probes_answer(
        values_file: Path, tmp_path: Path, redis_server: Callable[[str | None], int]) -> None:
    tracker_help()  # fails with what to build when the binary is missing
    objects = manifests(load_values(values_file))
    deployment = find(objects, "Deployment")
    container = tracker_container(deployment)
    settings = tomllib.loads(config_toml(objects))
    env = {e["name"]: e for e in container.get("env", [])}

    # The container port, which the probes and the Service name, is the one the tracker listens on.
    (port,) = container["ports"]
    assert port["name"] == "tracker"
    assert port["containerPort"] == int(settings["listen"].rsplit(":", 1)[1])
    for probe in PROBES:
        assert container[probe]["httpGet"]["port"] == "tracker"
    assert find(objects, "Service")["spec"]["ports"][0]["targetPort"] == "tracker"

    uses_redis = "redis-url" in settings or "TRACKER_REDIS_URL" in env
    if uses_redis and "--redis-url" not in tracker_help():
        pytest.skip("the tracker binary has no --redis-url flag yet (Redis scale-out not built "
                    "in): this configuration runs once it is")

    sandbox = Sandbox(tmp_path, deployment, settings)
    local = {key: sandbox.map_path(value) for key, value in settings.items()}
    local_port = free_port()
    local["listen"] = f"127.0.0.1:{local_port}"
    redis_password = None
    if "redis-password-file" in local:
        redis_password = Path(local["redis-password-file"]).read_text()
    redis_port = redis_server(redis_password) if uses_redis else None
    if "redis-url" in local:
        local["redis-url"] = with_local_host(local["redis-url"], redis_port)
    sandbox.config_path.write_text(toml_text(local))

    process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for name, entry in env.items():
        if "value" in entry:
            process_env[name] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            process_env[name] = SECRETS[(ref["name"], ref["key"])]
    args = [sandbox.map_path(arg) for arg in container["args"]]
    log = (tmp_path / "tracker.log").open("w+")
    tracker = subprocess.Popen([TRACKER_BIN, *args], env=process_env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        scheme = container["readinessProbe"]["httpGet"]["scheme"].lower()
        base = f"{scheme}://127.0.0.1:{local_port}"
        ready_path = container["readinessProbe"]["httpGet"]["path"]
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if tracker.poll() is not None:
                log.seek(0)
                pytest.fail(f"tracker exited with {tracker.returncode}:\n{log.read()}")
            try:
                if get(base + ready_path)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{ready_path} not 200 after {START_TIMEOUT} s"
            time.sleep(0.1)
        for probe in PROBES:
            http_get = container[probe]["httpGet"]
            url = f"{http_get['scheme'].lower()}://127.0.0.1:{local_port}{http_get['path']}"
            assert get(url)[0] == 200, probe
        status, metrics = get(base + "/metrics")
        assert status == 200 and "tracker_connection_capacity" in metrics
        if uses_redis:
            deadline = time.monotonic() + 5
            while redis_clients(redis_port, redis_password) == 0:
                assert time.monotonic() < deadline, "the tracker holds no connection to Redis"
                time.sleep(0.1)
    finally:
        tracker.send_signal(signal.SIGTERM)
        try:
            code = tracker.wait(timeout=settings["shutdown-timeout"] + 5)
        finally:
            if tracker.poll() is None:
                tracker.kill()
                tracker.wait()
            log.close()
    assert code == 0, (tmp_path / "tracker.log").read_text()
