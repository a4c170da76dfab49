"""The disco-bench image: its tag, its build, and the connection to the Docker Engine.

The tag is `disco-bench:<project version>-<hash12>`. The hash covers every file of the build
context (the Dockerfile, requirements.lock and the package sources, as filtered by .dockerignore)
and the build args, so the default image of `run --executor docker` always carries the code that
is checked out: edit a file and `run` asks for a rebuild instead of running stale code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import requests
from docker.utils.build import exclude_paths
from rich.console import Console
from rich.markup import escape

import docker
import harness
from harness.errors import UserError

IMAGE_REPOSITORY = "disco-bench"
DOCKERFILE = "docker/Dockerfile"
LABEL_VERSION = "disco-bench.version"
LABEL_FILES_HASH = "disco-bench.files-hash"  # the context without build args: finds any variant
BUILD_READ_TIMEOUT_S = 3600  # a detectron2 compile step can print nothing for many minutes


def project_root() -> Path:
    """The checkout this harness is imported from; it holds the Dockerfile and the sources."""
    root = Path(harness.__file__).resolve().parent.parent
    if not (root / DOCKERFILE).is_file():
        raise UserError(
            f"no {DOCKERFILE} under {root} (disco-bench is not running from a source checkout); "
            f"run it from a clone of the repository, or pass --docker-image to use a built image"
        )
    return root


def project_version(root: Path) -> str:
    match = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (root / "pyproject.toml").read_text())
    if not match:
        raise UserError(f'{root / "pyproject.toml"}: no `version = "..."` line in [project]')
    return match.group(1)


def default_base_image(root: Path) -> str:
    match = re.search(r"(?m)^ARG BASE_IMAGE=(\S+)", (root / DOCKERFILE).read_text())
    if not match:
        raise UserError(f"{root / DOCKERFILE}: no `ARG BASE_IMAGE=<image>` line")
    return match.group(1)


def context_files(root: Path) -> list[str]:
    """The files `docker build` gets, relative to root: what .dockerignore lets through."""
    ignore = root / ".dockerignore"
    patterns = []
    if ignore.is_file():
        lines = (line.strip() for line in ignore.read_text().splitlines())
        patterns = [line for line in lines if line and not line.startswith("#")]
    paths = exclude_paths(str(root), patterns, dockerfile=DOCKERFILE)
    return sorted(path for path in paths if (root / path).is_file())


def read_files(root: Path, names: list[str]) -> dict[str, tuple[bytes, int]]:
    """Contents and modes, read once: the hash and the build context are then the same bytes
    even while someone edits the checkout during a build."""
    return {name: ((root / name).read_bytes(), (root / name).stat().st_mode & 0o777) for name in names}


@dataclass(frozen=True)
class ImageRecipe:
    """What goes into one image: the build context's files and the build args."""

    root: Path
    version: str
    files: dict[str, tuple[bytes, int]] = field(repr=False)
    build_args: dict[str, str] = field(default_factory=dict)

    @cached_property
    def files_hash(self) -> str:
        digest = hashlib.sha256()
        for name, (data, _mode) in sorted(self.files.items()):
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return digest.hexdigest()

    @cached_property
    def tag(self) -> str:
        payload = json.dumps({"files": self.files_hash, "build_args": self.build_args}, sort_keys=True)
        return f"{IMAGE_REPOSITORY}:{self.version}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def image_recipe(base_image: str | None = None, cpu: bool = False, root: Path | None = None) -> ImageRecipe:
    root = root or project_root()
    build_args = {
        # Always explicit, so naming the default base gives the same tag as leaving it out.
        "BASE_IMAGE": base_image or default_base_image(root),
        "WITH_DETECTRON2": "0" if cpu else "1",
        "WITH_DALI": "0" if cpu else "1",
    }
    return ImageRecipe(root, project_version(root), read_files(root, context_files(root)), build_args)


def one_line(exc: BaseException) -> str:
    """The engine's own explanation of an API error, else the innermost cause (the socket's
    'No such file or directory', not the wrapper's URL), on one line."""
    explanation = getattr(exc, "explanation", None)
    if not explanation:
        root: BaseException = exc
        while (inner := root.__cause__ or root.__context__) is not None:
            root = inner
        explanation = str(root) or type(root).__name__
    return " ".join(str(explanation).split())


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(timeout: int = 60) -> docker.DockerClient:
    """A client with the API version negotiated; an unreachable engine is one clear line."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except (docker.errors.DockerException, requests.RequestException) as exc:
        reason = one_line(exc)
        hint = "start it (e.g. `sudo systemctl start docker`) or point DOCKER_HOST at a running engine"
        if "Permission denied" in reason:
            hint = "add your user to the `docker` group (then log in again) or run as a user who may use it"
        raise UserError(f"cannot reach the Docker Engine at {engine_address()} ({reason}); {hint}") from None


def image_exists(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


def newest_image_for_files(client: docker.DockerClient, files_hash: str) -> str | None:
    """A tag of the newest image built from the current files with any build args (--cpu, --base-image)."""
    images = client.images.list(filters={"label": f"{LABEL_FILES_HASH}={files_hash}"})
    tagged = [image for image in images if image.tags]
    if not tagged:
        return None
    newest = max(tagged, key=lambda image: image.attrs.get("Created", ""))
    return min(newest.tags)


def default_image(client: docker.DockerClient) -> str:
    """The image `disco-bench build` makes from the current files: the default variant's tag,
    else the newest variant built from these files; a clear error when there is none."""
    recipe = image_recipe()
    if image_exists(client, recipe.tag):
        return recipe.tag
    other = newest_image_for_files(client, recipe.files_hash)
    if other:
        return other
    raise UserError(
        f"image {recipe.tag} (the one for the files checked out now) not found; run `disco-bench build` first"
    )


def context_archive(recipe: ImageRecipe) -> IO[bytes]:
    """The exact bytes that were hashed, as the tar the engine builds from."""
    archive = tempfile.TemporaryFile()  # noqa: SIM115  (returned open: the build streams it)
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, (data, mode) in sorted(recipe.files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    archive.seek(0)
    return archive


def build_stream(
    client: docker.DockerClient, recipe: ImageRecipe, network_mode: str | None, no_cache: bool
) -> Iterator[dict[str, Any]]:
    api = docker.APIClient(
        version=client.api.api_version, timeout=BUILD_READ_TIMEOUT_S, **docker.utils.kwargs_from_env()
    )
    return api.build(
        fileobj=context_archive(recipe),
        custom_context=True,
        dockerfile=DOCKERFILE,
        tag=recipe.tag,
        buildargs=recipe.build_args,
        labels={LABEL_VERSION: recipe.version, LABEL_FILES_HASH: recipe.files_hash},
        network_mode=network_mode,
        nocache=no_cache,
        rm=True,
        forcerm=True,
        decode=True,
    )


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def short(text: str, limit: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def build_failure(step: str, error: str, last_output: str | None) -> UserError:
    """One line: which step, its exit code, and its last output line (usually the cause)."""
    match = re.match(r"(Step \d+/\d+) : (.*)", step, re.DOTALL)
    where = f"{match.group(1)} ({short(match.group(2))})" if match else short(step)
    code = re.search(r"returned a non-zero code: (\d+)", error)
    what = f"exit code {code.group(1)}" if code else short(error, 300)
    said = f"; its last output: {short(last_output, 300)}" if last_output else ""
    return UserError(f"image build failed at {where} with {what}{said} (full build output above)")


def build_lines(stream: Iterator[dict[str, Any]]) -> Iterator[tuple[str, str | None]]:
    """(output line, None) per whole line, across chunk borders; (pending text, error) at an error."""
    pending = ""
    for chunk in stream:
        pending += ANSI_ESCAPE.sub("", chunk.get("stream") or chunk.get("status") or "")
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line, None
        if "error" in chunk:
            yield pending, str(chunk["error"])
            return
    if pending:
        yield pending, None


def show_build(stream: Iterator[dict[str, Any]], console: Console) -> None:
    """Prints the engine's build output as it comes; raises UserError on a failed step."""
    step, last_output = "the start", None
    for line, error in build_lines(stream):
        if line.startswith("Step "):
            step, last_output = line, None
            console.print(f"[bold cyan]{escape(line)}[/]", soft_wrap=True)
        elif line.strip():
            console.print(escape(line), style="dim", highlight=False, soft_wrap=True)
            if not line.startswith(("+ ", " ---> ", "Removing intermediate container")):  # set -x echo, engine chatter
                last_output = line
        if error is not None:
            raise build_failure(step, error, last_output)


def build_image(
    recipe: ImageRecipe, network_mode: str | None = None, no_cache: bool = False, console: Console | None = None
) -> str:
    console = console or Console(stderr=True)
    client = connect()
    started = time.perf_counter()
    console.print(f"building [bold]{recipe.tag}[/] from {recipe.root} ({len(recipe.files)} context files)")
    for name, value in sorted(recipe.build_args.items()):
        console.print(f"  build arg {name}={value}", highlight=False)
    try:
        show_build(build_stream(client, recipe, network_mode, no_cache), console)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise UserError(f"image build of {recipe.tag} failed: {one_line(exc)}") from None
    if not image_exists(client, recipe.tag):  # the stream ended without an error chunk, yet no image
        raise UserError(f"image build of {recipe.tag} ended without producing the image; see the output above")
    size_gb = client.images.get(recipe.tag).attrs.get("Size", 0) / 1e9
    console.print(f"built {recipe.tag} ({size_gb:.2f} GB) in {time.perf_counter() - started:.0f} s")
    return recipe.tag
