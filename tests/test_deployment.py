"""The deployment files: Dockerfile, docker-compose.yml and .dockerignore.

No container engine is needed: the compose file is read with PyYAML and the Dockerfile is
parsed as text. The checks verify that the two files agree with each other and with the
server (its listen address, data directory and /healthz endpoint).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bindle_server.config import Settings
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


def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


def instructions_named(keyword: str) -> list[Instruction]:
    return [instruction for instruction in dockerfile() if instruction.keyword == keyword]


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form instruction (CMD, ENTRYPOINT, HEALTHCHECK ... CMD)."""
    value = json.loads(arguments)
    assert isinstance(value, list), f"not an exec-form JSON array: {arguments}"
    assert all(isinstance(item, str) for item in value)
    return [str(item) for item in value]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in instructions_named("ENV"):
        tokens = shlex.split(instruction.arguments)
        if "=" in tokens[0]:
            for token in tokens:
                key, _, value = token.partition("=")
                env[key] = value
        else:  # the legacy `ENV KEY value` form
            env[tokens[0]] = " ".join(tokens[1:])
    return env


def dockerfile_volumes() -> list[str]:
    paths: list[str] = []
    for instruction in instructions_named("VOLUME"):
        if instruction.arguments.startswith("["):
            paths.extend(exec_form(instruction.arguments))
        else:
            paths.extend(instruction.arguments.split())
    return paths


def dockerfile_healthcheck() -> list[str]:
    """The exec-form command of the Dockerfile's only HEALTHCHECK, options stripped."""
    healthchecks = instructions_named("HEALTHCHECK")
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


def service() -> dict[str, Any]:
    services = compose()["services"]
    assert isinstance(services, dict)
    assert list(services) == [SERVICE_NAME]
    definition = services[SERVICE_NAME]
    assert isinstance(definition, dict)
    return definition


def compose_environment() -> dict[str, str]:
    environment = service().get("environment", {})
    if isinstance(environment, list):
        pairs = (str(item).partition("=") for item in environment)
        return {key: value for key, _, value in pairs}
    assert isinstance(environment, dict)
    return {str(key): str(value) for key, value in environment.items()}


def compose_healthcheck() -> list[str]:
    """The compose healthcheck `test` as an argument list (CMD-SHELL split as the shell would)."""
    healthcheck = service()["healthcheck"]
    assert isinstance(healthcheck, dict)
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
