"""Run each stage in its own container of the disco-bench image (docker/README.md).

A stage's container runs `disco-bench run-stage /artifacts/<spec> --artifacts /artifacts
--results /results` as the host user, with no network, the artifacts and results roots mounted
read-write, data mounted read-only, and the GPUs asked for. Containers carry labels naming their
run and owner process, so the ones a crashed run left behind are removed at the next start.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import click
import requests
from docker.models.containers import Container
from docker.types import DeviceRequest

import docker
from harness.docker_image import (
    connect,
    default_image,
    engine_address,
    image_exists,
    one_line,
)
from harness.errors import StageFailed, UserError
from harness.provenance import git_state
from harness.stages import Stage
from harness.workspace import Workspace, atomic_write_json

CONTAINER_ARTIFACTS = "/artifacts"
CONTAINER_RESULTS = "/results"
LABEL_RUN = "disco-bench.run"
LABEL_STAGE = "disco-bench.stage"
LABEL_KEY = "disco-bench.key"
LABEL_OWNER_PID = "disco-bench.owner-pid"
LABEL_OWNER_HOST = "disco-bench.owner-host"
PASSTHROUGH_PREFIXES = ("DISCO_", "NCCL_")
PASSTHROUGH_NAMES = ("CUDA_VISIBLE_DEVICES", "CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS", "PYTHONHASHSEED")
LOG_TAIL_LINES = 20
SHM_SIZE = re.compile(r"^[1-9][0-9]*[bkmg]?$", re.IGNORECASE)
GPU_ID = re.compile(r"^([0-9]+|GPU-[0-9a-fA-F-]+|MIG-[0-9a-fA-F/-]+)$")

OPTIONS: list = [
    click.option(
        "--docker-image",
        default=None,
        metavar="IMAGE",
        help="[docker] Image to run stages in (default: the one `disco-bench build` makes from the current files).",
    ),
    click.option(
        "--docker-shm-size",
        default="16g",
        show_default=True,
        metavar="SIZE",
        help="[docker] /dev/shm size; data loaders die with a bus error on Docker's 64 MB default.",
    ),
    click.option(
        "--docker-env",
        multiple=True,
        metavar="NAME[=VALUE]",
        help="[docker] Pass this environment variable to the containers (repeatable), besides DISCO_*, NCCL_*, CUDA_VISIBLE_DEVICES.",
    ),
    click.option(
        "--gpus",
        default="all",
        show_default=True,
        metavar="all|none|0,1",
        help="[docker] GPUs given to each container: all, none, or device indices/UUIDs.",
    ),
    click.option(
        "--data-mount",
        multiple=True,
        metavar="HOST:CONTAINER",
        help="[docker] Mount a host data directory read-only (repeatable); the profile's data root is translated to it.",
    ),
]


@dataclass(frozen=True)
class DataMount:
    host: Path  # absolute, resolved
    container: PurePosixPath


def parse_gpus(value: str) -> list[DeviceRequest]:
    value = value.strip()
    if value == "none":
        return []
    if value == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    ids = [part.strip() for part in value.split(",")]
    if not all(GPU_ID.match(part) for part in ids):
        raise UserError(
            f"--gpus {value!r}: expected all, none, or comma-separated GPU indices or UUIDs, e.g. --gpus 0,1"
        )
    return [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]


def parse_shm_size(value: str) -> str:
    if not SHM_SIZE.match(value.strip()):
        raise UserError(f"--docker-shm-size {value!r}: expected a size like 16g, 512m or 1073741824")
    return value.strip().lower()


def parse_data_mount(value: str) -> DataMount:
    host, sep, container = value.rpartition(":")
    if not sep or not host or not container.startswith("/"):
        raise UserError(
            f"--data-mount {value!r}: expected HOST:CONTAINER with an absolute container path, e.g. --data-mount /data/imagenet:/data/imagenet"
        )
    host_path = Path(host).expanduser().resolve()
    if not host_path.exists():
        raise UserError(f"--data-mount {value!r}: host path {host_path} does not exist")
    target = PurePosixPath(container)
    reserved = (PurePosixPath(CONTAINER_ARTIFACTS), PurePosixPath(CONTAINER_RESULTS))
    if any(target == root or root in target.parents or target in root.parents for root in reserved):
        raise UserError(
            f"--data-mount {value!r}: {target} overlaps the artifacts/results mounts ({', '.join(map(str, reserved))}); choose another container path"
        )
    return DataMount(host_path, target)


def container_environment(extra: tuple[str, ...]) -> dict[str, str]:
    """The listed host variables, then --docker-env ones; a named but unset variable is skipped,
    as with `docker run -e NAME`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith(PASSTHROUGH_PREFIXES) or name in PASSTHROUGH_NAMES
    }
    for item in extra:
        name, sep, value = item.partition("=")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise UserError(f"--docker-env {item!r}: expected NAME or NAME=VALUE with a valid variable name")
        if sep:
            env[name] = value
        elif name in os.environ:
            env[name] = os.environ[name]
    git = git_state()  # the image has no .git; provenance reads these instead
    if git.get("commit"):
        env["DISCO_GIT_COMMIT"] = git["commit"]
        env["DISCO_GIT_DIRTY"] = "1" if git.get("dirty") else "0"
    # An arbitrary uid has no home in the image; matplotlib and friends want a writable one.
    env.update({"HOME": "/tmp", "PYTHONUNBUFFERED": "1"})
    return env


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the disco-bench process that made a container still runs (on this host)."""
    if labels.get(LABEL_OWNER_HOST) != socket.gethostname():
        return True  # another machine's: not ours to judge
    try:
        os.kill(int(labels.get(LABEL_OWNER_PID, "")), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def remove_stale_containers(client: docker.DockerClient) -> list[str]:
    """Removes the containers of runs whose disco-bench process is gone (killed, crashed)."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL_RUN}):
        if not owner_alive(container.labels):
            remove_container(container)
            removed.append(container.name)
    if removed:
        click.echo(f"removed {len(removed)} container(s) left by a crashed run: {', '.join(removed)}", err=True)
    return removed


def remove_container(container: Container) -> None:
    """Force-removes (kills) a container; a second Ctrl-C meanwhile cannot leave it behind."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (`kill`, a scheduler's stop) cleans up like Ctrl-C: the container goes too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def log_lines(container: Container) -> Iterator[str]:
    pending = b""
    for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace").rstrip("\r")
    if pending:
        yield pending.decode(errors="replace").rstrip("\r")


def engine_error(stage: Stage, exc: Exception) -> UserError:
    reason = one_line(exc)
    if "could not select device driver" in reason:
        return UserError(
            f"stage {stage.name}: the Docker Engine has no GPU support ({reason}); install the NVIDIA Container Toolkit, or pass --gpus none to run on CPU"
        )
    return UserError(f"stage {stage.name}: Docker Engine error: {reason}")


@dataclass
class DockerExecutor:
    client: docker.DockerClient
    image: str
    shm_size: str
    device_requests: list[DeviceRequest]
    data_mounts: list[DataMount]
    environment: dict[str, str]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    name: str = "docker"

    def run(self, stages: list[Stage], workspace: Workspace) -> None:
        with terminate_as_interrupt():
            for stage in stages:
                try:
                    self.run_stage(stage, workspace)
                except (docker.errors.DockerException, requests.RequestException) as exc:
                    raise engine_error(stage, exc) from None

    def run_stage(self, stage: Stage, workspace: Workspace) -> None:
        artifacts, results = workspace.artifacts.resolve(), workspace.results.resolve()
        for root in (artifacts, results):
            root.mkdir(parents=True, exist_ok=True)  # else the engine creates them, owned by root
        spec_path, extra_mounts = self.write_container_spec(stage, workspace)
        command = [
            "disco-bench",
            "run-stage",
            f"{CONTAINER_ARTIFACTS}/{spec_path.resolve().relative_to(artifacts).as_posix()}",
            "--artifacts",
            CONTAINER_ARTIFACTS,
            "--results",
            CONTAINER_RESULTS,
            "--executor-name",
            self.name,
        ]
        volumes = {
            str(artifacts): {"bind": CONTAINER_ARTIFACTS, "mode": "rw"},
            str(results): {"bind": CONTAINER_RESULTS, "mode": "rw"},
        }
        for mount in [*self.data_mounts, *extra_mounts]:
            volumes[str(mount.host)] = {"bind": str(mount.container), "mode": "ro"}
        container = self.client.containers.create(
            self.image,
            command=command,
            name=self.container_name(stage),
            labels=self.labels(stage),
            user=f"{os.getuid()}:{os.getgid()}",
            network_mode="none",
            shm_size=self.shm_size,
            device_requests=self.device_requests,
            volumes=volumes,
            environment=self.environment,
            working_dir="/tmp",
            init=True,
            detach=True,
        )
        try:
            self.follow(container, stage, spec_path.parent / "container.log")
        except KeyboardInterrupt:
            click.echo(f"[{stage.name}] interrupted: stopping and removing container {container.name}", err=True)
            raise
        finally:
            remove_container(container)

    def follow(self, container: Container, stage: Stage, log_path: Path) -> None:
        """Starts the container, streams its log with a [stage] prefix, fails on a non-zero exit."""
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        container.start()
        with open(log_path, "w", encoding="utf-8") as log:
            for line in log_lines(container):
                click.echo(f"[{stage.name}] {line}")
                log.write(line + "\n")
                tail.append(line)
        status = container.wait().get("StatusCode", -1)
        if status != 0:
            container.reload()
            oom = " (killed: out of memory)" if container.attrs.get("State", {}).get("OOMKilled") else ""
            lines = "\n".join(f"  {line}" for line in tail)
            raise StageFailed(
                f"stage {stage.name} failed in container {container.name} with exit code {status}{oom}; full log: {log_path}; last {len(tail)} lines:\n{lines}"
            )

    def write_container_spec(self, stage: Stage, workspace: Workspace) -> tuple[Path, list[DataMount]]:
        """The stage's spec with its data root as the container sees it; the extra mounts that needs."""
        spec: dict[str, Any] = stage.spec(workspace)
        runtime = dict(spec.get("runtime") or {})
        extra: list[DataMount] = []
        if runtime.get("data_root"):
            runtime["data_root"], extra = self.container_data_root(str(runtime["data_root"]))
        spec["runtime"] = runtime
        path = stage.spec_path(workspace)
        atomic_write_json(path, spec)
        return path, extra

    def container_data_root(self, data_root: str) -> tuple[str, list[DataMount]]:
        """Under a --data-mount: its container path. Else, if it exists, the same path mounted
        read-only. Else unchanged (a stage that needs it reports it missing)."""
        host = Path(data_root).expanduser().resolve()
        for mount in self.data_mounts:
            if host == mount.host or mount.host in host.parents:
                return str(mount.container / host.relative_to(mount.host)), []
        if host.exists():
            return str(host), [DataMount(host, PurePosixPath(host))]
        return data_root, []

    def labels(self, stage: Stage) -> dict[str, str]:
        return {
            LABEL_RUN: self.run_id,
            LABEL_STAGE: stage.name,
            LABEL_KEY: stage.key,
            LABEL_OWNER_PID: str(os.getpid()),
            LABEL_OWNER_HOST: socket.gethostname(),
        }

    def container_name(self, stage: Stage) -> str:
        return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"disco-bench-{stage.name}-{self.run_id[:8]}")


def make_executor(params: dict) -> DockerExecutor:
    device_requests = parse_gpus(params.get("gpus") or "all")
    shm_size = parse_shm_size(params.get("docker_shm_size") or "16g")
    data_mounts = [parse_data_mount(value) for value in params.get("data_mount") or ()]
    environment = container_environment(tuple(params.get("docker_env") or ()))
    client = connect()
    try:
        remove_stale_containers(client)
        image = params.get("docker_image") or default_image(client)
        if not image_exists(client, image):
            raise UserError(f"image {image} not found; run `disco-bench build` first")
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise UserError(f"Docker Engine error at {engine_address()}: {one_line(exc)}") from None
    return DockerExecutor(client, image, shm_size, device_requests, data_mounts, environment)
