"""The deployment files: Dockerfile, docker-compose.yml, .dockerignore and deploy/.

No container engine is needed: the compose file is read with PyYAML and the Dockerfiles are
parsed as text. The checks verify that the files agree with each other and with the
server (its listen address, data directory and /healthz endpoint), for the single-node
service and for the scale-out profile (S3 store, PostgreSQL, two nodes, nginx). Two tests
run the profile's own pieces on this machine: nginx with deploy/nginx/bindle.conf in front
of two live servers, and deploy/rgw/entrypoint.sh creating, stopping and restarting a Ceph
cluster; each skips, saying why, where its programs are missing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from bindle_server.client import ClientConfig
from bindle_server.client.events import EventStream
from bindle_server.config import Settings
from bindle_server.model.signature import SignatureRole
from bindle_server.signing import SecretKey, SecretKeyFile
from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess, free_port

REPO_ROOT = Path(__file__).parents[1]
DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
SERVICE_NAME = "bindle"
HEALTH_PATH = "/healthz"
PROBE_TIMEOUT = 30.0


# --- Dockerfile parsing -------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case, e.g. "RUN"
    arguments: str  # continuation lines joined into one line


def parse_dockerfile(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions, joining `\\` continuations and dropping comments."""
    instructions: list[Instruction] = []
    pending = ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):  # Docker drops these inside continuations too
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    return parse_dockerfile(path.read_text())


def instructions_named(keyword: str, path: Path = DOCKERFILE) -> list[Instruction]:
    return [instruction for instruction in dockerfile(path) if instruction.keyword == keyword]


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form instruction (CMD, ENTRYPOINT, HEALTHCHECK ... CMD)."""
    value = json.loads(arguments)
    assert isinstance(value, list), f"not an exec-form JSON array: {arguments}"
    assert all(isinstance(item, str) for item in value)
    return [str(item) for item in value]


def dockerfile_env(path: Path = DOCKERFILE) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in instructions_named("ENV", path):
        tokens = shlex.split(instruction.arguments)
        if "=" in tokens[0]:
            for token in tokens:
                key, _, value = token.partition("=")
                env[key] = value
        else:  # the legacy `ENV KEY value` form
            env[tokens[0]] = " ".join(tokens[1:])
    return env


def dockerfile_volumes(path: Path = DOCKERFILE) -> list[str]:
    paths: list[str] = []
    for instruction in instructions_named("VOLUME", path):
        if instruction.arguments.startswith("["):
            paths.extend(exec_form(instruction.arguments))
        else:
            paths.extend(instruction.arguments.split())
    return paths


def dockerfile_healthcheck(path: Path = DOCKERFILE) -> list[str]:
    """The exec-form command of the Dockerfile's only HEALTHCHECK, options stripped."""
    healthchecks = instructions_named("HEALTHCHECK", path)
    assert len(healthchecks) == 1, "expected exactly one HEALTHCHECK"
    match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(\[.*\])", healthchecks[0].arguments)
    assert match, f"HEALTHCHECK is not `[OPTIONS] CMD [exec form]`: {healthchecks[0].arguments}"
    return exec_form(match.group(2))


def runtime_user() -> str:
    """The user part of the last USER instruction (the one the container runs as)."""
    users = instructions_named("USER")
    assert users, "the Dockerfile sets no USER, so the server would run as root"
    return users[-1].arguments.split(":", 1)[0]


# --- docker-compose.yml -------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    """Every service of the compose file (YAML anchors and merge keys resolved)."""
    definitions = compose()["services"]
    assert isinstance(definitions, dict)
    assert all(isinstance(definition, dict) for definition in definitions.values())
    return definitions


def profiles(definition: dict[str, Any]) -> list[str]:
    return [str(profile) for profile in definition.get("profiles", [])]


def service(name: str = SERVICE_NAME) -> dict[str, Any]:
    return services()[name]


def compose_environment(name: str = SERVICE_NAME) -> dict[str, str]:
    environment = service(name).get("environment", {})
    if isinstance(environment, list):
        pairs = (str(item).partition("=") for item in environment)
        return {key: value for key, _, value in pairs}
    assert isinstance(environment, dict)
    return {str(key): str(value) for key, value in environment.items()}


def healthcheck_command(healthcheck: dict[str, Any]) -> list[str]:
    """A compose healthcheck `test` as an argument list (CMD-SHELL split as the shell would)."""
    assert not healthcheck.get("disable", False)
    test = healthcheck["test"]
    if isinstance(test, str):
        return shlex.split(test)
    assert isinstance(test, list)
    kind, *arguments = (str(item) for item in test)
    if kind == "CMD-SHELL":
        return shlex.split(" ".join(arguments))
    assert kind == "CMD", f"unexpected healthcheck test kind {kind!r}"
    return arguments


def compose_healthcheck(name: str = SERVICE_NAME) -> list[str]:
    healthcheck = service(name)["healthcheck"]
    assert isinstance(healthcheck, dict)
    return healthcheck_command(healthcheck)


@dataclass(frozen=True)
class PortMapping:
    host_ip: str  # "" when the port is published on every host interface
    published: str
    target: str


def parse_port(entry: object) -> PortMapping:
    """A `ports` entry in short (`[[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/PROTO]`) or long form."""
    if isinstance(entry, dict):
        return PortMapping(
            str(entry.get("host_ip", "")), str(entry.get("published", "")), str(entry["target"])
        )
    text = str(entry).split("/", 1)[0]
    rest, _, target = text.rpartition(":")
    host_ip, _, published = rest.rpartition(":")
    return PortMapping(host_ip.strip("[]"), published, target)


@dataclass(frozen=True)
class Mount:
    kind: str  # "volume" or "bind"
    source: str
    target: str
    read_only: bool


def parse_mount(entry: object) -> Mount:
    """A `volumes` entry of a service, in short (`SOURCE:TARGET[:MODE]`) or long form."""
    if isinstance(entry, dict):
        return Mount(
            str(entry.get("type", "volume")),
            str(entry.get("source", "")),
            str(entry["target"]),
            bool(entry.get("read_only", False)),
        )
    source, target, *mode = str(entry).split(":")
    kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    return Mount(kind, source, target, "ro" in ",".join(mode).split(","))


# --- what the files should agree on -------------------------------------------------------


def listen_port() -> int:
    """The port the server listens on inside the container, per the Dockerfile's ENV."""
    address = compose_environment().get(
        "BINDLE_IP_ADDRESS_PORT", dockerfile_env()["BINDLE_IP_ADDRESS_PORT"]
    )
    return Settings(address=address).host_and_port()[1]


def python_snippet(command: list[str]) -> str:
    """The code of a `python -c CODE` command."""
    assert Path(command[0]).name in {"python", "python3"}, f"not a python command: {command}"
    assert "-c" in command, f"no -c in {command}"
    return command[command.index("-c") + 1]


def probed_url(command: list[str]) -> str:
    urls = re.findall(r"https?://[^\s'\"]+", python_snippet(command))
    assert len(urls) == 1, f"expected one URL in the probe, found {urls}"
    return str(urls[0])


def assert_probes_health_endpoint(command: list[str]) -> None:
    url = urlsplit(probed_url(command))
    assert url.path == HEALTH_PATH
    assert url.hostname is not None
    assert url.hostname == "localhost" or ipaddress.ip_address(url.hostname).is_loopback
    assert url.port == listen_port()


# --- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_builds_on_python_3_11_slim() -> None:
    base = instructions_named("FROM")[-1].arguments.split()
    image = next(word for word in base if not word.startswith("--"))
    assert re.fullmatch(
        r"(docker\.io/)?(library/)?python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image
    ), f"final stage is built FROM {image}, not python 3.11 slim"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    assert runtime_user() not in {"", "root", "0"}


def test_dockerfile_installs_the_project_with_pip_without_cache_or_dev_extras() -> None:
    installs = [
        run.arguments for run in instructions_named("RUN") if "pip install" in run.arguments
    ]
    assert installs, "no RUN pip install"
    for command in installs:
        assert "--no-cache-dir" in command
        assert "[dev]" not in command


def test_dockerfile_volume_is_the_data_directory() -> None:
    data_directory = dockerfile_env()["BINDLE_DIRECTORY"]
    assert data_directory.startswith("/")
    assert dockerfile_volumes() == [data_directory]


def test_dockerfile_chowns_the_data_directory_to_the_runtime_user_before_volume() -> None:
    # Build steps that change a path after VOLUME declares it are discarded, so the
    # chown must come first; a new named volume then copies the directory's ownership.
    instructions = dockerfile()
    volume_at = next(i for i, ins in enumerate(instructions) if ins.keyword == "VOLUME")
    data_directory = dockerfile_env()["BINDLE_DIRECTORY"]
    owners: list[str] = []
    for instruction in instructions[:volume_at]:
        if instruction.keyword != "RUN":
            continue
        for owner, paths in re.findall(
            r"\bchown\s+(?:-\S+\s+)*(\S+)\s+([^&;|]+)", instruction.arguments
        ):
            if data_directory in paths.split():
                owners.append(owner.split(":", 1)[0])
    assert owners == [runtime_user()]


def test_dockerfile_server_listens_on_all_container_interfaces_on_the_exposed_port() -> None:
    env = dockerfile_env()
    host, port = Settings(address=env["BINDLE_IP_ADDRESS_PORT"]).host_and_port()
    assert host == "0.0.0.0", "a server bound to loopback is unreachable through a port mapping"
    exposed = [word for expose in instructions_named("EXPOSE") for word in expose.arguments.split()]
    assert exposed == [str(port)] or exposed == [f"{port}/tcp"]


def test_dockerfile_starts_bindle_server() -> None:
    entrypoints = instructions_named("ENTRYPOINT") or instructions_named("CMD")
    assert entrypoints, "neither ENTRYPOINT nor CMD"
    command = exec_form(entrypoints[-1].arguments)  # exec form: the server gets SIGTERM
    assert command[0] == "bindle-server"


def test_dockerfile_healthcheck_probes_healthz_on_the_listen_port() -> None:
    assert_probes_health_endpoint(dockerfile_healthcheck())


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_service_builds_from_the_repository_dockerfile() -> None:
    build = service()["build"]
    if isinstance(build, str):
        build = {"context": build}
    assert isinstance(build, dict)
    context = (COMPOSE_FILE.parent / str(build.get("context", "."))).resolve()
    assert context == REPO_ROOT.resolve()
    assert (context / str(build.get("dockerfile", "Dockerfile"))).resolve() == DOCKERFILE.resolve()


def test_compose_publishes_the_server_port_on_loopback_only() -> None:
    definition = service()
    assert definition.get("network_mode") != "host", "host networking bypasses port mappings"
    mappings = [parse_port(entry) for entry in definition["ports"]]
    assert mappings
    for mapping in mappings:
        assert mapping.host_ip, f"{mapping} is published on every host interface"
        assert ipaddress.ip_address(mapping.host_ip).is_loopback, mapping
    assert {mapping.target for mapping in mappings} == {str(listen_port())}


def test_compose_mounts_a_named_volume_at_the_data_directory() -> None:
    data_directory = compose_environment().get(
        "BINDLE_DIRECTORY", dockerfile_env()["BINDLE_DIRECTORY"]
    )
    mounts = [parse_mount(entry) for entry in service()["volumes"]]
    data_mounts = [mount for mount in mounts if mount.target == data_directory]
    assert len(data_mounts) == 1, f"expected one mount at {data_directory}, found {mounts}"
    mount = data_mounts[0]
    assert mount.kind == "volume"
    assert mount.source, "an anonymous volume is lost on `docker compose down`"
    assert not mount.read_only


def test_compose_declares_the_named_volume_at_top_level() -> None:
    declared = compose().get("volumes") or {}
    assert isinstance(declared, dict)
    for mount in map(parse_mount, service()["volumes"]):
        if mount.kind == "volume":
            assert mount.source in declared


def test_compose_healthcheck_probes_healthz_with_interval_timeout_and_retries() -> None:
    healthcheck = service()["healthcheck"]
    assert isinstance(healthcheck, dict)
    assert {"interval", "timeout", "retries"} <= healthcheck.keys()
    assert isinstance(healthcheck["retries"], int)
    assert healthcheck["retries"] > 0
    assert_probes_health_endpoint(compose_healthcheck())


def test_compose_and_dockerfile_run_the_same_health_probe() -> None:
    assert python_snippet(compose_healthcheck()) == python_snippet(dockerfile_healthcheck())


def test_compose_restarts_the_service_unless_stopped() -> None:
    assert service()["restart"] == "unless-stopped"


# --- the probe itself ---------------------------------------------------------------------


def test_health_probes_are_valid_python() -> None:
    for source, command in (
        ("Dockerfile", dockerfile_healthcheck()),
        ("docker-compose.yml", compose_healthcheck()),
    ):
        compile(python_snippet(command), f"<{source} healthcheck>", "exec")


def run_probe(port: int) -> subprocess.CompletedProcess[bytes]:
    """The Dockerfile's probe, pointed at `port` on this machine instead of the container's."""
    code = python_snippet(dockerfile_healthcheck())
    url = probed_url(dockerfile_healthcheck())
    moved = url.replace(f":{urlsplit(url).port}/", f":{port}/", 1)
    assert moved != url
    return subprocess.run(
        [sys.executable, "-c", code.replace(url, moved)],
        capture_output=True,
        timeout=PROBE_TIMEOUT,
        check=False,
    )


def test_health_probe_exits_0_while_the_server_answers(live_server: ServerProcess) -> None:
    result = run_probe(live_server.port)
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def test_health_probe_exits_1_when_nothing_listens() -> None:
    # Docker reads 1 as unhealthy; 2 is reserved and other codes are undefined.
    assert run_probe(free_port()).returncode == 1


# --- build context ------------------------------------------------------------------------


def dockerignore_patterns() -> set[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return {line.rstrip("/") for line in lines if line and not line.startswith("#")}


def test_dockerignore_keeps_local_data_and_environments_out_of_the_build_context() -> None:
    assert {".git", ".venv", "storage"} <= dockerignore_patterns()


def test_dockerfile_copies_only_paths_present_in_the_build_context() -> None:
    ignored = dockerignore_patterns()
    copies = instructions_named("COPY")
    assert copies
    for copy in copies:
        words = [word for word in copy.arguments.split() if not word.startswith("--")]
        for source in words[:-1]:
            assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path in the repository"
            assert Path(source).parts[0] not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_the_other_images_sources_out_of_the_build_context() -> None:
    assert "deploy" in dockerignore_patterns()


# --- scale-out profile: the compose file --------------------------------------------------

SCALE_OUT = "scale-out"
NODES = ("bindle-1", "bindle-2")
PROXY = "proxy"
POSTGRES = "postgres"
RGW = "rgw"
KEY_INIT = "signing-key"
RGW_DIR = REPO_ROOT / "deploy" / "rgw"
RGW_DOCKERFILE = RGW_DIR / "Dockerfile"
RGW_ENTRYPOINT = RGW_DIR / "entrypoint.sh"
NGINX_CONFIG = REPO_ROOT / "deploy" / "nginx" / "bindle.conf"
SHARED_SETTINGS = (
    "BINDLE_STORAGE",
    "BINDLE_INDEX",
    "BINDLE_SIGNING_KEYS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
)
# At least this long for a transfer's reads and writes through the proxy, in seconds.
LONG_TIMEOUT = 600


def interpolate(value: str) -> str:
    """Compose's variable substitution with no variable set: `${VAR:-default}` (and
    `${VAR-default}`) give the default, `${VAR}` the empty string, `$$` a literal `$`."""

    def substitute(match: re.Match[str]) -> str:
        return "$" if match.group(0) == "$$" else match.group("default") or ""

    assert not re.search(r"\$\w", value.replace("$$", "")), f"unsupported substitution: {value}"
    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}", substitute, value)


def scale_out_services() -> dict[str, dict[str, Any]]:
    return {name: d for name, d in services().items() if SCALE_OUT in profiles(d)}


def depends_on(name: str) -> dict[str, str]:
    """The services `name` waits for, each with its condition."""
    dependencies = service(name).get("depends_on", {})
    if isinstance(dependencies, list):
        return {str(dependency): "service_started" for dependency in dependencies}
    assert isinstance(dependencies, dict)
    return {
        str(key): str(value.get("condition", "service_started"))
        for key, value in dependencies.items()
    }


def is_one_shot(name: str) -> bool:
    """A service that runs to completion: what others wait for with completed_successfully."""
    return any(
        depends_on(other).get(name) == "service_completed_successfully"
        for other in scale_out_services()
    )


def mounts(name: str) -> list[Mount]:
    return [parse_mount(entry) for entry in service(name).get("volumes", [])]


def node_port() -> int:
    environment = compose_environment(NODES[0])
    address = environment.get("BINDLE_IP_ADDRESS_PORT", dockerfile_env()["BINDLE_IP_ADDRESS_PORT"])
    return Settings(address=address).host_and_port()[1]


def test_compose_default_deployment_is_the_single_bindle_service() -> None:
    # `docker compose up` (no profile) starts exactly the services without a profile.
    assert [name for name, d in services().items() if not profiles(d)] == [SERVICE_NAME]


def test_scale_out_profile_has_its_services() -> None:
    assert set(scale_out_services()) == {POSTGRES, RGW, KEY_INIT, *NODES, PROXY}
    for name, definition in services().items():
        assert profiles(definition) in ([], [SCALE_OUT]), f"{name}: unexpected profiles"


def test_scale_out_services_have_health_checks_or_run_once() -> None:
    for name, definition in scale_out_services().items():
        healthcheck = definition.get("healthcheck")
        assert isinstance(healthcheck, dict), f"{name} has no healthcheck"
        if is_one_shot(name):
            # It exits when done; a health check of an exited container means nothing.
            assert healthcheck.get("disable") is True, name
            assert str(definition.get("restart", "no")) == "no", name
            continue
        assert {"test", "interval", "timeout", "retries"} <= healthcheck.keys(), name
        assert isinstance(healthcheck["retries"], int)
        assert healthcheck["retries"] > 0, name
        assert healthcheck_command(healthcheck), name
        assert definition["restart"] == "unless-stopped", name


def test_scale_out_health_checks_probe_what_each_service_serves() -> None:
    for node in NODES:
        assert_probes_health_endpoint(compose_healthcheck(node))
        assert python_snippet(compose_healthcheck(node)) == python_snippet(dockerfile_healthcheck())
    assert Path(compose_healthcheck(POSTGRES)[0]).name == "pg_isready"
    assert compose_healthcheck(RGW) == dockerfile_healthcheck(RGW_DOCKERFILE)
    # The proxy's check goes through nginx to a node's /healthz.
    probe = compose_healthcheck(PROXY)
    urls = [urlsplit(word) for word in probe if word.startswith("http")]
    assert len(urls) == 1, probe
    assert urls[0].hostname == "127.0.0.1"
    assert urls[0].port == nginx_listen_port()
    assert urls[0].path == HEALTH_PATH


def test_scale_out_only_the_proxy_publishes_a_port_and_only_on_loopback() -> None:
    for name, definition in scale_out_services().items():
        assert definition.get("network_mode") != "host", name
        if name != PROXY:
            assert not definition.get("ports"), f"{name} publishes a port"
    mappings = [parse_port(entry) for entry in service(PROXY)["ports"]]
    assert mappings
    for mapping in mappings:
        assert mapping.host_ip, f"{mapping} is published on every host interface"
        assert ipaddress.ip_address(mapping.host_ip).is_loopback, mapping
    assert {mapping.target for mapping in mappings} == {str(nginx_listen_port())}
    # Not the single-node service's port: both may run at once.
    published = {mapping.published for mapping in mappings}
    assert not published & {parse_port(entry).published for entry in service()["ports"]}


def test_scale_out_nodes_share_storage_index_signing_keys_and_credentials() -> None:
    environments = [compose_environment(node) for node in NODES]
    for setting in SHARED_SETTINGS:
        values = {environment.get(setting) for environment in environments}
        assert len(values) == 1, f"{setting} differs between the nodes: {values}"
        assert None not in values, f"{setting} is not set"
    assert (
        compose_environment(KEY_INIT)["BINDLE_SIGNING_KEYS"]
        == environments[0]["BINDLE_SIGNING_KEYS"]
    )


def test_compose_opts_in_to_open_serving_where_it_publishes_on_loopback_only() -> None:
    """The image refuses to serve open (tests/auth/test_exposure.py); compose's services are
    open on purpose, each behind a port published on the host's loopback only."""
    assert "BINDLE_UNAUTHENTICATED" not in dockerfile_env()
    for name in (SERVICE_NAME, *NODES):
        assert compose_environment(name).get("BINDLE_UNAUTHENTICATED") == "true", name


def test_scale_out_nodes_build_the_repository_image_with_the_s3_and_postgres_extras() -> None:
    for name in (*NODES, KEY_INIT):
        build = service(name)["build"]
        assert isinstance(build, dict)
        context = (COMPOSE_FILE.parent / str(build.get("context", "."))).resolve()
        assert context == REPO_ROOT.resolve()
        dockerfile_path = context / str(build.get("dockerfile", "Dockerfile"))
        assert dockerfile_path.resolve() == DOCKERFILE.resolve()
        extras = set(str(build["args"]["EXTRAS"]).split(","))
        assert extras == {"s3", "postgres"}, name


def pip_install_target() -> str:
    """The (shell-quoted) project argument of the Dockerfile's pip install."""
    runs = [run.arguments for run in instructions_named("RUN") if "pip install" in run.arguments]
    assert len(runs) == 1
    match = re.search(r"pip install\s+(?:--\S+\s+)*(\S+)", runs[0])
    assert match, runs[0]
    return match.group(1)


def test_dockerfile_installs_extras_only_when_the_build_asks_for_them() -> None:
    declared = [
        ins.arguments for ins in instructions_named("ARG") if ins.arguments.startswith("EXTRAS")
    ]
    assert declared in (["EXTRAS"], ['EXTRAS=""'], ["EXTRAS="]), declared
    for extras, expected in (("", "/src"), ("s3,postgres", "/src[s3,postgres]")):
        result = subprocess.run(
            ["sh", "-c", f"printf %s {pip_install_target()}"],
            env={"EXTRAS": extras, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=True,
        )
        assert result.stdout == expected


def test_scale_out_storage_is_the_bucket_the_rgw_service_creates() -> None:
    from bindle_server.storage.s3 import S3Location

    node = compose_environment(NODES[0])
    rgw = compose_environment(RGW)
    location = S3Location.from_url(interpolate(node["BINDLE_STORAGE"]))
    assert location.bucket == rgw["RGW_BUCKET"]
    assert location.endpoint is not None
    endpoint = urlsplit(location.endpoint)
    assert endpoint.hostname == RGW
    assert str(endpoint.port) == rgw.get("RGW_PORT", dockerfile_env(RGW_DOCKERFILE)["RGW_PORT"])
    assert location.addressing == "path"  # a service name is no DNS zone for bucket hosts
    # The same credentials (the same compose expressions, so also when they are set).
    assert node["AWS_ACCESS_KEY_ID"] == rgw["RGW_ACCESS_KEY"]
    assert node["AWS_SECRET_ACCESS_KEY"] == rgw["RGW_SECRET_KEY"]


def test_scale_out_index_is_the_postgres_service_database() -> None:
    index = urlsplit(interpolate(compose_environment(NODES[0])["BINDLE_INDEX"]))
    database = {key: interpolate(value) for key, value in compose_environment(POSTGRES).items()}
    assert index.scheme in {"postgresql", "postgres"}
    assert index.hostname == POSTGRES
    assert index.port == 5432
    assert index.username == database["POSTGRES_USER"]
    assert index.password == database["POSTGRES_PASSWORD"]
    assert index.path == f"/{database['POSTGRES_DB']}"
    assert str(service(POSTGRES)["image"]).split(":") == ["postgres", "15"]


def test_scale_out_signing_key_file_is_on_a_volume_every_node_shares() -> None:
    path = Path(compose_environment(NODES[0])["BINDLE_SIGNING_KEYS"])
    declared = compose().get("volumes") or {}
    sources = set()
    for name in (*NODES, KEY_INIT):
        holding = [m for m in mounts(name) if path.is_relative_to(m.target)]
        assert len(holding) == 1, f"{name}: {path} is on no mount or on several"
        assert holding[0].kind == "volume"
        assert holding[0].source in declared
        sources.add(holding[0].source)
    assert len(sources) == 1, f"the nodes' key files are on different volumes: {sources}"
    key_init = [m for m in mounts(KEY_INIT) if path.is_relative_to(m.target)]
    assert not key_init[0].read_only


def test_scale_out_volumes_are_named_and_declared() -> None:
    declared = compose().get("volumes") or {}
    for name in scale_out_services():
        for mount in mounts(name):
            if mount.kind == "volume":
                assert mount.source in declared, f"{name}: {mount.source} is not declared"
    assert [m.target for m in mounts(RGW) if m.kind == "volume"] == dockerfile_volumes(
        RGW_DOCKERFILE
    )
    assert [m.target for m in mounts(POSTGRES) if m.kind == "volume"] == [
        "/var/lib/postgresql/data"
    ]


def test_scale_out_start_order() -> None:
    for node in NODES:
        assert depends_on(node) == {
            KEY_INIT: "service_completed_successfully",
            POSTGRES: "service_healthy",
            RGW: "service_healthy",
        }
    assert depends_on(PROXY) == dict.fromkeys(NODES, "service_healthy")
    assert depends_on(KEY_INIT) == depends_on(POSTGRES) == depends_on(RGW) == {}
    # Every dependency is in the profile, so enabling it enables what it waits for.
    for name in scale_out_services():
        assert set(depends_on(name)) <= set(scale_out_services()), name


def test_scale_out_signing_key_service_creates_one_key_once(tmp_path: Path) -> None:
    # The one-shot's shell command, run here with this checkout's bindle-server.
    definition = service(KEY_INIT)
    assert definition["entrypoint"] == ["sh", "-c"]
    script = interpolate(str(definition["command"][0]))
    key_file = tmp_path / "shared" / "signing-keys.toml"
    environment = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "BINDLE_SIGNING_KEYS": str(key_file),
        "HOME": str(tmp_path),
    }

    def run() -> None:
        subprocess.run(
            ["sh", "-c", script],
            env=environment,
            cwd=tmp_path,
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=True,
        )

    run()
    created = key_file.read_bytes()
    keys = SecretKeyFile.load(key_file).keys
    assert len(keys) == 1
    assert SignatureRole.HOST in keys[0].roles
    assert key_file.stat().st_mode & 0o077 == 0
    run()  # a second `up` keeps the key the nodes already signed with
    assert key_file.read_bytes() == created


# --- scale-out profile: the S3 store image -------------------------------------------------


def test_rgw_image_is_built_from_debian_12_ceph_packages() -> None:
    assert service(RGW)["build"] == {"context": "deploy/rgw", "dockerfile": "Dockerfile"}
    base = instructions_named("FROM", RGW_DOCKERFILE)[-1].arguments.split()[0]
    assert re.fullmatch(r"(docker\.io/)?(library/)?debian:(12|bookworm)(-slim)?", base), base
    installs = " ".join(i.arguments for i in instructions_named("RUN", RGW_DOCKERFILE))
    for package in ("radosgw", "ceph-mon", "ceph-osd", "ceph-common", "curl"):
        assert re.search(rf"\s{package}(\s|$)", installs), package
    assert "--no-install-recommends" in installs
    assert "rm -rf /var/lib/apt/lists" in installs


def test_rgw_image_runs_the_entrypoint_with_data_in_its_volume() -> None:
    copies = [i.arguments.split() for i in instructions_named("COPY", RGW_DOCKERFILE)]
    assert [words for words in copies if words[0] == RGW_ENTRYPOINT.name], copies
    installed = next(words[-1] for words in copies if words[0] == RGW_ENTRYPOINT.name)
    entrypoint = exec_form(instructions_named("ENTRYPOINT", RGW_DOCKERFILE)[-1].arguments)
    assert entrypoint in ([installed], [Path(installed).name])
    assert dockerfile_healthcheck(RGW_DOCKERFILE) == [*entrypoint, "health"]
    assert dockerfile_volumes(RGW_DOCKERFILE) == [dockerfile_env(RGW_DOCKERFILE)["CEPH_DATA"]]
    exposed = instructions_named("EXPOSE", RGW_DOCKERFILE)[0].arguments.split()
    assert exposed == [dockerfile_env(RGW_DOCKERFILE)["RGW_PORT"]]


def test_rgw_entrypoint_is_valid_bash_that_keeps_data_in_bluestore() -> None:
    subprocess.run(["bash", "-n", str(RGW_ENTRYPOINT)], check=True, timeout=PROBE_TIMEOUT)
    text = RGW_ENTRYPOINT.read_text()
    assert "osd objectstore = bluestore" in text
    assert "memstore" not in text  # memstore loses everything when the container stops


# --- scale-out profile: the proxy ---------------------------------------------------------


def nginx_text() -> str:
    """The proxy's configuration without comments."""
    return "\n".join(line.split("#", 1)[0] for line in NGINX_CONFIG.read_text().splitlines())


def nginx_directives(name: str) -> list[list[str]]:
    """The arguments of every `name ...;` directive, wherever it stands."""
    return [
        match.split() for match in re.findall(rf"(?<![\w-]){name}\s+([^;{{}}]*);", nginx_text())
    ]


def nginx_directive(name: str) -> list[str]:
    found = nginx_directives(name)
    assert len(found) == 1, f"expected one {name} directive, found {found}"
    return found[0]


def nginx_upstreams() -> dict[str, list[str]]:
    """Each upstream block's name and the addresses of its servers."""
    return {
        name: [line.split()[0] for line in re.findall(r"\bserver\s+([^;]*);", body)]
        for name, body in re.findall(r"\bupstream\s+(\S+)\s*\{([^}]*)\}", nginx_text())
    }


def nginx_seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert match, f"not an nginx time: {value}"
    return int(match.group(1)) * units[match.group(2) or "s"]


def nginx_listen_port() -> int:
    return int(nginx_directive("listen")[0].rpartition(":")[2])


def test_proxy_routes_to_every_node() -> None:
    upstreams = nginx_upstreams()
    assert len(upstreams) == 1, upstreams
    ((name, addresses),) = upstreams.items()
    assert sorted(addresses) == sorted(f"{node}:{node_port()}" for node in NODES)
    assert nginx_directives("proxy_pass") == [[f"http://{name}"]]


def test_proxy_streams_bodies_without_limits() -> None:
    assert nginx_directive("client_max_body_size") == ["0"]  # 0: no limit (the default is 1m)
    assert nginx_directive("proxy_request_buffering") == ["off"]
    assert nginx_directive("proxy_buffering") == ["off"]
    assert nginx_directive("proxy_http_version") == ["1.1"]  # chunked uploads stream as-is
    for timeout in (
        "client_body_timeout",
        "send_timeout",
        "proxy_send_timeout",
        "proxy_read_timeout",
    ):
        assert nginx_seconds(nginx_directive(timeout)[0]) >= LONG_TIMEOUT, timeout
    # A POST whose body went to one node must never be replayed to the other.
    for arguments in nginx_directives("proxy_next_upstream"):
        assert "non_idempotent" not in arguments


def test_compose_mounts_the_proxy_configuration_read_only() -> None:
    (mount,) = mounts(PROXY)
    assert mount.kind == "bind"
    assert (COMPOSE_FILE.parent / mount.source).resolve() == NGINX_CONFIG.resolve()
    assert mount.target == "/etc/nginx/conf.d/default.conf"  # replaces the image's default
    assert mount.read_only
    assert re.fullmatch(r"(docker\.io/)?(library/)?nginx:[\w.-]+", str(service(PROXY)["image"]))


# --- scale-out profile: the proxy for real -------------------------------------------------
# nginx (Debian's package) with deploy/nginx/bindle.conf, its upstreams pointed at two live
# bindle-server processes sharing one data directory and one signing key file.

NGINX_TIMEOUT = 10.0
# Read at import, before the fixtures clear BINDLE_* variables. CI sets it: there, a
# program these tests need that is missing is a failure, not a skip.
REQUIRE_ENGINES = os.environ.get("BINDLE_TEST_REQUIRE_ENGINES") == "1"
LARGE_PARCEL = 24 * 1024 * 1024  # well past nginx's default 1 MiB body limit and buffers


def skip_unless_required(reason: str) -> None:
    if REQUIRE_ENGINES:
        pytest.fail(f"BINDLE_TEST_REQUIRE_ENGINES=1 but {reason}")
    pytest.skip(reason)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


def render_nginx_config(node_ports: list[int], listen_port: int) -> str:
    """deploy/nginx/bindle.conf with the nodes and the listen address moved to loopback."""
    text = NGINX_CONFIG.read_text()
    for node, port in zip(NODES, node_ports, strict=True):
        text, count = re.subn(
            rf"(\bserver\s+){re.escape(node)}:{node_port()}\b", rf"\g<1>127.0.0.1:{port}", text
        )
        assert count == 1, f"no upstream server line for {node}"
    text, count = re.subn(r"(\blisten\s+)\d+\s*;", rf"\g<1>127.0.0.1:{listen_port};", text)
    assert count == 1
    return text


def nginx_main_config(directory: Path, site: Path) -> str:
    """What the nginx image's own nginx.conf provides around conf.d/, in `directory`."""
    # Run as root, nginx's workers would switch to nobody, who cannot enter pytest's
    # private temporary directory; they stay root instead.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {site};
}}
"""


@contextmanager
def running_nginx(directory: Path, node_ports: list[int]) -> Iterator[str]:
    """nginx in front of `node_ports`; yields its base URL and stops it (by PID) afterwards."""
    binary = nginx_binary()
    assert binary is not None
    directory.mkdir()
    port = free_port()
    site = directory / "bindle.conf"
    site.write_text(render_nginx_config(node_ports, port))
    main = directory / "nginx.conf"
    main.write_text(nginx_main_config(directory, site))
    command = [binary, "-p", str(directory), "-c", str(main), "-e", str(directory / "error.log")]
    check = subprocess.run(
        [*command, "-t"], capture_output=True, text=True, timeout=NGINX_TIMEOUT, check=False
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + NGINX_TIMEOUT
        while True:
            assert process.poll() is None, f"nginx exited: {process.communicate()[1]!r}"
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, "nginx did not listen in time"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(NGINX_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(NGINX_TIMEOUT)
        if process.stderr is not None:
            process.stderr.close()


def requests_logged(server: ServerProcess, marker: str) -> int:
    return sum(marker in line for line in server.log().splitlines() if "uvicorn.access" in line)


def test_proxy_spreads_requests_over_both_nodes_and_streams_large_parcels(
    tmp_path: Path, server_factory: Callable[..., ServerProcess]
) -> None:
    if nginx_binary() is None:
        skip_unless_required(
            "nginx not found: install Debian's nginx package (scripts/test does, as root)"
        )
    shared = tmp_path / "shared"
    key_file = tmp_path / "keys" / "signing-keys.toml"
    SecretKeyFile([SecretKey.generate("scale-out test", [SignatureRole.HOST])]).save(key_file)
    nodes = [server_factory(shared, "--signing-keys", str(key_file)) for _ in NODES]

    with (
        running_nginx(tmp_path / "nginx", [node.port for node in nodes]) as base,
        httpx.Client(base_url=base, timeout=NGINX_TIMEOUT) as client,
    ):
        # Round robin: consecutive requests go to alternate nodes.
        for number in range(6):
            assert client.get("/v1/_q", params={"q": f"route-probe-{number}"}).status_code == 200
        assert [requests_logged(node, "route-probe-") for node in nodes] == [3, 3]
        # Both nodes sign with the one key.
        published = {client.get("/v1/bindle-keys").text for _ in NODES}
        assert len(published) == 1

        data = random.Random(7).randbytes(LARGE_PARCEL)
        item = parcel(data, name="large.bin")
        invoice = make_invoice("example.com/proxy", "1.0.0", [item])
        created = client.post(
            "/v1/_i", content=invoice.toml(), headers={"Content-Type": "application/toml"}
        )
        assert created.status_code == 202, created.text

        def chunks() -> Iterator[bytes]:  # no Content-Length: a chunked upload
            for start in range(0, len(data), 1024 * 1024):
                yield data[start : start + 1024 * 1024]

        parcel_path = f"/v1/_i/{invoice.bindle_id}@{item.sha256}"
        uploaded = client.post(parcel_path, content=chunks())
        assert uploaded.status_code == 200, uploaded.text
        digest = hashlib.sha256()
        with client.stream("GET", parcel_path) as download:
            assert download.status_code == 200
            for chunk in download.iter_bytes():
                digest.update(chunk)
        assert digest.hexdigest() == item.sha256
        ranged = client.get(parcel_path, headers={"Range": "bytes=1048576-1048607"})
        assert ranged.status_code == 206
        assert ranged.content == data[1048576:1048608]
        # Either node serves what went through the other.
        for node in nodes:
            assert httpx.get(f"{node.url}/_r/missing/{invoice.bindle_id}").text.strip() == (
                "missing = []"
            )

        # A node that is gone is skipped: reads still succeed through the proxy.
        nodes[0].stop()
        for _ in range(4):
            assert client.get("/v1/_q", params={"q": "after-stop"}).status_code == 200

    # nginx kept no body on disk on the way (it says so in its log when it does).
    errors = (tmp_path / "nginx" / "error.log").read_text()
    assert "buffered to a temporary file" not in errors, errors
    assert "client intended to send too large body" not in errors, errors


def test_proxy_passes_the_event_stream_through_as_events_happen(
    tmp_path: Path, server_factory: Callable[..., ServerProcess]
) -> None:
    if nginx_binary() is None:
        skip_unless_required(
            "nginx not found: install Debian's nginx package (scripts/test does, as root)"
        )
    shared = tmp_path / "shared"
    nodes = [server_factory(shared) for _ in NODES]
    with running_nginx(tmp_path / "nginx", [node.port for node in nodes]) as base:
        config = ClientConfig.of(f"{base}/v1", timeout=NGINX_TIMEOUT)
        with EventStream(config, query="example.com/streamed") as stream:
            events = iter(stream)
            # Pushed to each node directly: the stream, through whichever node nginx chose,
            # gets every event as it happens (one event does not wait for the next).
            for node in nodes:
                invoice = make_invoice("example.com/streamed", f"1.0.{node.port}")
                created = httpx.post(
                    f"{node.url}/_i",
                    content=invoice.toml(),
                    headers={"Content-Type": "application/toml"},
                )
                assert created.status_code == 201, created.text
                assert [next(events).action, next(events).action] == [
                    "invoice.created",
                    "invoice.completed",
                ]


# --- scale-out profile: the S3 store's entry point for real --------------------------------
# deploy/rgw/entrypoint.sh run on this machine (no container engine needed): created once,
# stopped, started again on the same directory, and the objects are still there.

RGW_PROGRAMS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph-authtool")
RGW_START_TIMEOUT = 120.0
RGW_STOP_TIMEOUT = 90.0  # the entry point gives each of its three daemons 20 s


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def kill_osd(run_dir: Path) -> bool:
    """SIGKILL the OSD started with this run directory's configuration, if it is running."""
    for pid in processes_mentioning(str(run_dir / "ceph.conf")):
        with suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"ceph-osd"):
                os.kill(pid, 9)
                return True
    return False


@contextmanager
def running_rgw(
    environment: dict[str, str], log: Path, during_start: Callable[[], bool] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """The entry point until it says it is ready; SIGTERM to its PID afterwards, bounded.

    `during_start` is called while it starts, until it returns True.
    """
    with log.open("ab") as output:
        process = subprocess.Popen(
            ["bash", str(RGW_ENTRYPOINT)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + RGW_START_TIMEOUT
        while "ceph-rgw: ready" not in log.read_text(errors="replace"):
            if during_start is not None and during_start():
                during_start = None
            assert process.poll() is None, f"entrypoint exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not ready in time: {log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(RGW_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # its daemons are in its session: end them too
            os.killpg(process.pid, 9)
            process.wait(RGW_STOP_TIMEOUT)


@pytest.mark.slow
def test_rgw_entrypoint_creates_the_cluster_once_and_keeps_objects_across_restarts() -> None:
    missing = [program for program in (*RGW_PROGRAMS, "curl") if shutil.which(program) is None]
    if missing:
        skip_unless_required(
            f"{', '.join(missing)} not found: "
            "install Debian's radosgw ceph-mon ceph-osd ceph-common"
        )
    from tests.rgw import S3Server

    # Not under pytest's private temporary directory: the daemons drop root for `ceph`.
    root = Path(tempfile.mkdtemp(prefix="bindle-rgw-entrypoint-"))
    root.chmod(0o755)
    try:
        rgw_port = free_port()
        environment = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CEPH_DATA": str(root / "data"),
            "CEPH_RUN_DIR": str(root / "run"),
            "RGW_ADDRESS": "127.0.0.1",
            "RGW_PORT": str(rgw_port),
            "CEPH_MON_PORT": str(free_port()),
            "CEPH_STORE_GIB": "2",
            "CEPH_OSD_MEMORY_MIB": "1024",
            "RGW_ACCESS_KEY": "entrypoint-test",
            "RGW_SECRET_KEY": "entrypoint-test-secret",
            "RGW_BUCKET": "bindle",
        }
        store = S3Server(
            f"http://127.0.0.1:{rgw_port}", "entrypoint-test", "entrypoint-test-secret"
        )
        large = random.Random(11).randbytes(6 * 1024 * 1024)

        def health() -> int:
            command = ["bash", str(RGW_ENTRYPOINT), "health"]
            return subprocess.run(command, env=environment, timeout=30, check=False).returncode

        with running_rgw(environment, root / "first.log"):
            assert health() == 0
            client = store.client()
            client.put_object(Bucket="bindle", Key="kept/small", Body=b"hello")
            client.put_object(Bucket="bindle", Key="kept/large", Body=large)
            client.close()
        assert processes_mentioning(str(root)) == []
        assert health() != 0
        first = (root / "first.log").read_text()
        assert "creating the cluster" in first

        # The OSD killed as soon as it runs, before the gateway is ready: it is started again.
        with running_rgw(environment, root / "second.log", lambda: kill_osd(root / "run")):
            client = store.client()
            assert client.get_object(Bucket="bindle", Key="kept/small")["Body"].read() == b"hello"
            assert client.get_object(Bucket="bindle", Key="kept/large")["Body"].read() == large
            client.close()
        assert processes_mentioning(str(root)) == []
        second = (root / "second.log").read_text()
        assert "creating the cluster" not in second
        assert "osd exited during start-up: starting it again" in second
    finally:
        shutil.rmtree(root, ignore_errors=True)
