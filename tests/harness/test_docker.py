"""The image build and the Docker executor against a real Docker Engine (`bash .ci/setup-docker.sh`
starts one and makes the local base image $DISCO_TEST_BASE_IMAGE).

Tests marked `docker` skip with the reason when no engine answers, and fail instead under CI=true.
The unmarked tests at the top (tag hashing, build context, option parsing, an unreachable engine)
need no engine.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import pytest
from rich.console import Console

import docker
from harness.docker_image import (
    DOCKERFILE,
    context_files,
    default_image,
    image_recipe,
    show_build,
)
from harness.errors import StageFailed, UserError
from harness.executors import docker as docker_executor
from harness.executors.docker import (
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_RUN,
    LABEL_STAGE,
    DataMount,
    DockerExecutor,
    make_executor,
)  # fmt: skip
from harness.stages import Stage
from harness.workspace import Workspace
from tests.conftest import disco_bench, without_timings

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks.yaml"
PINS = dict(re.findall(r"(?m)^(torch|torchvision)==(\S+)$", (REPO / "requirements.lock").read_text()))
BASE_IMAGE = os.environ.get(
    "DISCO_TEST_BASE_IMAGE", f"disco-bench-test-base:bookworm-torch{PINS['torch']}-tv{PINS['torchvision']}"
)  # as .ci/setup-docker.sh names it
PAIR = "r50-effb0"
# --evals linear: the 8-stage chain (two pretrains, DisCo, init, four linear evals) keeps CI short
SMOKE_RUN = [
    "run",
    "--benchmarks",
    str(BENCHMARKS),
    "--pair",
    PAIR,
    "--profile",
    "tiny",
    "--smoke",
    "--evals",
    "linear",
    "--executor",
    "docker",
]
NO_ENGINE = "unix:///nonexistent/disco-bench-test/docker.sock"
T = TypeVar("T")


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


# ---------------------------------------------------------------- no engine needed


def copy_context(destination: Path) -> Path:
    for name in context_files(REPO):
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, destination / name)
    return destination


def test_build_context_holds_sources_and_keeps_data_out() -> None:
    files = context_files(REPO)
    for needed in (
        "pyproject.toml",
        "requirements.lock",
        DOCKERFILE,
        "harness/cli.py",
        "harness/executors/docker.py",
        "disco/models.py",
    ):
        assert needed in files
    kept_out = (".git/", ".venv/", "results/", "artifacts/", "data/", "tests/", "shared/")
    assert not [name for name in files if name.startswith(kept_out) or "__pycache__" in name or name.endswith(".pyc")]


def test_tag_follows_context_files_and_build_args(tmp_path: Path) -> None:
    root = copy_context(tmp_path)
    tag = image_recipe(root=root).tag
    version = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert re.fullmatch(rf"disco-bench:{re.escape(version)}-[0-9a-f]{{12}}", tag)
    assert image_recipe(root=root).tag == tag  # stable
    default_base = re.search(r"(?m)^ARG BASE_IMAGE=(\S+)", (REPO / DOCKERFILE).read_text()).group(1)
    assert image_recipe(base_image=default_base, root=root).tag == tag  # naming the default changes nothing
    assert len({tag, image_recipe(cpu=True, root=root).tag, image_recipe(base_image="other:1", root=root).tag}) == 3

    (root / "results").mkdir()
    (root / "results" / "x.json").write_text("{}")
    (root / "notes.md").write_text("not in the context")
    assert image_recipe(root=root).tag == tag  # files outside the context do not count
    with open(root / "harness" / "cli.py", "a") as handle:
        handle.write("\n# edited\n")
    assert image_recipe(root=root).tag != tag  # an edited source asks for a rebuild
    edited = image_recipe(root=root).tag
    with open(root / "requirements.lock", "a") as handle:
        handle.write("tqdm==4.67.1\n")
    assert image_recipe(root=root).tag != edited


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("none", []),
        ("all", [{"count": -1, "ids": []}]),
        ("0,1", [{"count": 0, "ids": ["0", "1"]}]),
        ("GPU-3f2a0c1e-aaaa", [{"count": 0, "ids": ["GPU-3f2a0c1e-aaaa"]}]),
    ],
)
def test_gpus_option_becomes_device_requests(value: str, expected: list[dict[str, Any]]) -> None:
    requests = docker_executor.parse_gpus(value)
    assert [{"count": request.count, "ids": request.device_ids} for request in requests] == expected
    assert all(request.capabilities == [["gpu"]] for request in requests)


@pytest.mark.parametrize(
    ("call", "value", "match"),
    [
        (docker_executor.parse_gpus, "banana", "--gpus 'banana': expected all, none"),
        (docker_executor.parse_gpus, "0,,1", "--gpus"),
        (docker_executor.parse_shm_size, "16 gigs", "--docker-shm-size '16 gigs'"),
        (docker_executor.parse_shm_size, "0", "--docker-shm-size"),
        (docker_executor.parse_data_mount, "/data", "expected HOST:CONTAINER"),
        (docker_executor.parse_data_mount, "/:data", "absolute container path"),
        (docker_executor.parse_data_mount, "/nonexistent/disco/data:/data", "does not exist"),
        (docker_executor.parse_data_mount, "/:/results/data", "overlaps the artifacts/results mounts"),
        (docker_executor.parse_data_mount, "/:/", "overlaps the artifacts/results mounts"),
        (docker_executor.container_environment, ("1BAD",), "--docker-env '1BAD'"),
    ],
)
def test_bad_executor_options_are_one_clear_error(call: Callable[[Any], Any], value: Any, match: str) -> None:
    with pytest.raises(UserError, match=re.escape(match)) as caught:
        call(value)
    assert "\n" not in caught.value.format_message()


def test_environment_passes_listed_variables_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCO_EPOCH_SLEEP", "3")
    monkeypatch.setenv("NCCL_DEBUG", "INFO")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("MY_TOKEN", "secret")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    env = docker_executor.container_environment(("WANDB_MODE", "NOT_SET_ANYWHERE", "EXTRA=1"))
    assert {
        "DISCO_EPOCH_SLEEP": "3",
        "NCCL_DEBUG": "INFO",
        "CUDA_VISIBLE_DEVICES": "1",
        "WANDB_MODE": "offline",
        "EXTRA": "1",
    }.items() <= env.items()
    assert "MY_TOKEN" not in env and "NOT_SET_ANYWHERE" not in env
    assert env["HOME"] == "/tmp"


def test_data_root_is_translated_into_the_container(tmp_path: Path) -> None:
    data = tmp_path / "datasets"
    (data / "imagenet").mkdir(parents=True)
    other = tmp_path / "elsewhere"
    other.mkdir()
    executor = DockerExecutor(None, "image", "16g", [], [DataMount(data.resolve(), PurePosixPath("/data"))], {})
    assert executor.container_data_root(str(data / "imagenet")) == ("/data/imagenet", [])
    assert executor.container_data_root(str(other)) == (
        str(other.resolve()),
        [DataMount(other.resolve(), PurePosixPath(other.resolve()))],
    )
    assert executor.container_data_root("missing/imagenet") == ("missing/imagenet", [])


def test_build_failure_names_the_step_and_its_last_output_line() -> None:
    # The engine cuts its stream anywhere, mid-line included; `+ ...` lines are `set -x` echoes.
    chunks = [
        {"stream": "Step 8/20 : RUN if [ \"$WITH_DETECTRON2\" = \"1\" ]; th"}, {"stream": "en make; fi\n"},
        {"stream": "\u001b[91mnvcc: command not fo"}, {"stream": "und\n\u001b[0m+ exit "}, {"stream": "1\n"},
        {"error": "The command '/bin/sh -c if ...' returned a non-zero code: 1", "errorDetail": {"code": 1}},
    ]  # fmt: skip
    with pytest.raises(UserError) as caught:
        show_build(iter(chunks), Console(file=io.StringIO()))
    assert caught.value.format_message() == (
        'image build failed at Step 8/20 (RUN if [ "$WITH_DETECTRON2" = "1" ]; then make; fi) with exit code 1; '
        "its last output: nvcc: command not found (full build output above)"
    )


@pytest.mark.parametrize("command", [[*SMOKE_RUN, "--gpus", "none"], ["build", "--cpu"]])
def test_unreachable_engine_is_one_clear_line(command: list[str], tmp_path: Path) -> None:
    proc = (
        disco_bench(
            *command,
            "--artifacts",
            str(tmp_path / "a"),
            "--results",
            str(tmp_path / "r"),
            env={"DOCKER_HOST": NO_ENGINE},
        )
        if command[0] == "run"
        else disco_bench(*command, env={"DOCKER_HOST": NO_ENGINE})
    )
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    assert line.startswith(f"error: cannot reach the Docker Engine at {NO_ENGINE} (")
    assert "DOCKER_HOST" in line


def test_bad_gpus_option_on_the_command_line(tmp_path: Path) -> None:
    proc = disco_bench(
        *SMOKE_RUN, "--gpus", "banana", "--artifacts", str(tmp_path / "a"), "--results", str(tmp_path / "r")
    )
    assert proc.returncode == 2
    assert one_error_line(proc.stderr).startswith("error: --gpus 'banana': expected all, none")


# ---------------------------------------------------------------- a real engine


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}; .ci/setup-docker.sh should have provided it")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        unavailable(f"no Docker Engine reachable ({exc}); run `bash .ci/setup-docker.sh`")
    yield client
    client.close()


@pytest.fixture(scope="module")
def image(engine: docker.DockerClient) -> str:
    """The CPU variant built on the local base through `disco-bench build`, as a user would."""
    try:
        engine.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        unavailable(f"base image {BASE_IMAGE} not found; run `bash .ci/setup-docker.sh`")
    started = time.perf_counter()
    proc = disco_bench("build", "--base-image", BASE_IMAGE, "--cpu", "--network", "host", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    tag = proc.stdout.strip().splitlines()[-1]
    print(f"disco-bench build: {tag} in {time.perf_counter() - started:.0f} s")
    return tag


def labelled(engine: docker.DockerClient, label: str) -> list[Any]:
    return engine.containers.list(all=True, filters={"label": label})


def wait_for(probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.mark.docker
def test_build_tags_the_cpu_image_from_the_current_files(engine: docker.DockerClient, image: str) -> None:
    current = image_recipe(base_image=BASE_IMAGE, cpu=True)
    if current.tag != image and os.environ.get("CI") != "true":
        pytest.skip("the checkout changed since the build (someone is editing it); rerun")
    assert image == current.tag
    assert default_image(engine) == image  # what `run --executor docker` picks with no --docker-image
    attrs = engine.images.get(image).attrs
    assert attrs["Config"]["User"] == "disco"  # non-root by default
    assert attrs["Config"]["Labels"]["disco-bench.files-hash"] == current.files_hash
    script = "import detectron2" + "\n" + "raise SystemExit(3)"  # the CPU variant has no detectron2
    out = engine.containers.run(
        image,
        ["sh", "-c", f"disco-bench --help >/dev/null && python3 -c '{script}' 2>/dev/null; echo $?"],
        network_mode="none",
        remove=True,
    )
    assert out.decode().strip() == "1"


def git_head() -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], check=False, capture_output=True, text=True
    ).stdout.strip()


def docker_run_args(image: str, root: Path) -> list[str]:
    return [*SMOKE_RUN, "--gpus", "none", "--docker-image", image, "--artifacts", str(root / "artifacts"), "--results", str(root / "results")]  # fmt: skip


@pytest.fixture(scope="module")
def clean_docker_run(
    image: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess, str]:
    """One uninterrupted smoke run in containers, shared by the tests that check or compare against it."""
    root = tmp_path_factory.mktemp("clean-docker-run")
    head_before = git_head()
    return root, disco_bench(*docker_run_args(image, root), cwd=root, timeout=1200), head_before


def stored_results(results: Path) -> dict[str, Any]:
    """Every stage result's config, metrics and history, without wall times and resume counts."""
    return {
        path.name: without_timings({key: json.loads(path.read_text())[key] for key in ("config", "metrics", "history")})
        for path in sorted(results.glob("*/stages/*.json"))
    }


@pytest.mark.docker
def test_smoke_run_writes_results_on_the_host(
    engine: docker.DockerClient, clean_docker_run: tuple[Path, subprocess.CompletedProcess, str]
) -> None:
    tmp_path, proc, head_before = clean_docker_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = sorted((tmp_path / "results").glob("*/stages/*.json"))
    names = [path.stem for path in results]
    for prefix in (
        "pretrain-simclr-r50-",
        "pretrain-simclr-effb0-",
        "distill-disco-r50-effb0-",
        "eval-linear-distill-disco-",
    ):
        assert any(name.startswith(prefix) for name in names), (prefix, names)
    for path in results:
        result = json.loads(path.read_text())
        assert result["status"] == "done"
        assert result["provenance"]["executor"] == "docker"
        assert result["provenance"]["hardware"]["host"] != socket.gethostname()  # computed in a container
        assert path.stat().st_uid == os.getuid() and path.stat().st_gid == os.getgid()  # not the image's `disco`
        assert f"[{result['stage']['name']}] " in proc.stdout  # its log, prefixed
    if head_before:  # passed in (no .git in the image); either head if someone committed meanwhile
        assert json.loads(results[0].read_text())["provenance"]["git"]["commit"] in {head_before, git_head()}
    assert not engine.containers.list(all=True, filters={"label": LABEL_RUN, "status": "running"})


@pytest.mark.docker
def test_a_killed_container_resumes_from_its_last_checkpoint_and_ends_as_a_clean_run(
    engine: docker.DockerClient,
    image: str,
    clean_docker_run: tuple[Path, subprocess.CompletedProcess, str],
    tmp_path: Path,
) -> None:
    """`docker kill` (SIGKILL, as the OOM killer or a node going down) of the first stage's container
    once its first epoch's checkpoint is on the host; `run` again resumes that stage from it and the
    cell ends with the uninterrupted run's results, bit for bit, and no temp file."""
    args = docker_run_args(image, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=tmp_path,
        env={**os.environ, "DISCO_EPOCH_SLEEP": "300"},  # after each epoch's checkpoint: killed while it sleeps
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        checkpoint = wait_for(
            lambda: next(iter((tmp_path / "artifacts").rglob("checkpoint.pt")), None), 900, "the first checkpoint"
        )
        owned = f"{LABEL_OWNER_PID}={proc.pid}"
        container = next(iter(engine.containers.list(filters={"label": owned, "status": "running"})))
        container.kill()
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed_stage = checkpoint.parent.name.rsplit("-", 1)[0]  # <stage>-<key[:10]>
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == StageFailed.exit_code and len(errors) == 1, stderr
    assert (
        errors[0].startswith(f"error: stage {killed_stage} failed in container") and "with exit code 137" in errors[0]
    )
    assert "Traceback" not in stderr

    rerun = disco_bench(*args, cwd=tmp_path, timeout=1200)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    killed = json.loads(next((tmp_path / "results").glob(f"*/stages/{killed_stage}.json")).read_text())
    assert killed["metrics"]["resumed_from_epoch"] >= 1  # from the checkpoint, not from scratch
    clean_root, clean, _ = clean_docker_run
    assert clean.returncode == 0
    assert stored_results(tmp_path / "results") == stored_results(clean_root / "results")
    assert not [path for path in tmp_path.rglob("*.tmp")]


@pytest.mark.docker
def test_failed_build_step_is_one_clear_line(engine: docker.DockerClient, image: str) -> None:
    proc = disco_bench(
        "build", "--base-image", BASE_IMAGE, "--network", "host", timeout=600
    )  # CUDA variant: no nvcc here
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"error: image build failed at Step \d+/\d+ \(RUN .*\) with exit code 1; its last output: WITH_DETECTRON2=1 needs a CUDA devel base image with nvcc; build with --cpu otherwise \(full build output above\)",
        last,
    ), last
    assert "Traceback" not in proc.stderr


def missing_input_stage() -> Stage:
    never_run = Stage(name="pretrain-never-run", kind="pretrain", profile="docker-test", config={"seed": 0})
    return Stage(
        name="eval-needs-missing-input",
        kind="eval",
        profile="docker-test",
        # a valid eval spec (run-stage checks it first), so the failure is the missing input's
        config={"evaluation": "knn", "recipe": {}, "seed": 0},
        inputs={"encoder": never_run},
    )


def executor_for(image: str, **params: Any) -> DockerExecutor:
    return make_executor(
        {"docker_image": image, "gpus": "none", "docker_shm_size": "1g", "data_mount": (), "docker_env": (), **params}
    )


@pytest.mark.docker
def test_failing_stage_reports_exit_code_and_log_tail(engine: docker.DockerClient, image: str, tmp_path: Path) -> None:
    executor = executor_for(image)
    stage = missing_input_stage()
    with pytest.raises(StageFailed) as caught:
        executor.run([stage], Workspace(tmp_path / "artifacts", tmp_path / "results"))
    message = caught.value.format_message()
    assert message.startswith(f"stage {stage.name} failed in container disco-bench-{stage.name}-")
    assert "with exit code 2" in message  # run-stage's UserError exit code, from inside the container
    tail = message.split("lines:\n", 1)[1]
    assert "pretrain-never-run" in tail and "error:" in tail  # the stage's own error line
    assert list((tmp_path / "artifacts").glob("stages/eval-needs-missing-input-*/container.log"))
    assert not labelled(engine, f"{LABEL_RUN}={executor.run_id}")  # removed even though it failed


@pytest.mark.docker
def test_gpus_on_an_engine_without_gpu_support_is_one_clear_line(
    engine: docker.DockerClient, image: str, tmp_path: Path
) -> None:
    if "nvidia" in engine.info().get("Runtimes", {}):
        pytest.skip("this engine has the NVIDIA runtime")
    executor = executor_for(image, gpus="all")
    with pytest.raises(UserError, match=r"no GPU support .*NVIDIA Container Toolkit, or pass --gpus none") as caught:
        executor.run([missing_input_stage()], Workspace(tmp_path / "artifacts", tmp_path / "results"))
    assert "\n" not in caught.value.format_message()
    assert not labelled(engine, f"{LABEL_RUN}={executor.run_id}")


@pytest.mark.docker
def test_missing_image_is_one_clear_line(engine: docker.DockerClient, tmp_path: Path) -> None:
    proc = disco_bench(
        *SMOKE_RUN,
        "--gpus",
        "none",
        "--docker-image",
        "disco-bench:no-such-tag",
        "--artifacts",
        str(tmp_path / "a"),
        "--results",
        str(tmp_path / "r"),
    )
    assert proc.returncode == 2
    assert (
        one_error_line(proc.stderr) == "error: image disco-bench:no-such-tag not found; run `disco-bench build` first"
    )


@pytest.mark.docker
def test_containers_of_a_crashed_run_are_removed_at_next_start(engine: docker.DockerClient, image: str) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid now names no process: a crashed owner
    host = socket.gethostname()
    stale_labels = {
        LABEL_RUN: "crashed-run",
        LABEL_STAGE: "stale",
        LABEL_OWNER_PID: str(finished.pid),
        LABEL_OWNER_HOST: host,
    }
    live_labels = {**stale_labels, LABEL_RUN: "live-run", LABEL_OWNER_PID: str(os.getpid())}
    stale = engine.containers.run(image, ["sleep", "600"], labels=stale_labels, network_mode="none", detach=True)
    live = engine.containers.run(image, ["sleep", "600"], labels=live_labels, network_mode="none", detach=True)
    try:
        executor_for(image)
        assert not labelled(engine, f"{LABEL_RUN}=crashed-run")
        assert [container.id for container in labelled(engine, f"{LABEL_RUN}=live-run")] == [
            live.id
        ]  # its owner still runs
    finally:
        for container in (stale, live):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_stops_and_removes_the_container(
    engine: docker.DockerClient, image: str, tmp_path: Path, signum: int
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    command = [
        sys.executable, "-m", "harness", *SMOKE_RUN, "--gpus", "none", "--docker-image", image, "--data-mount", f"{data}:/data",
        "--docker-env", "DISCO_TEST_MARKER=hello", "--artifacts", str(tmp_path / "artifacts"), "--results", str(tmp_path / "results"),
    ]  # fmt: skip
    env = {**os.environ, "DISCO_EPOCH_SLEEP": "300"}  # passes through (DISCO_*): the stage outlasts the test
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a CI job started in the background inherits SIGINT ignored, and Python
        # then installs no Ctrl-C handler at all
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    owned = f"{LABEL_OWNER_PID}={proc.pid}"
    try:
        container = wait_for(
            lambda: next(iter(engine.containers.list(filters={"label": owned, "status": "running"})), None),
            180,
            "the stage's container",
        )
        config, host = container.attrs["Config"], container.attrs["HostConfig"]
        assert config["User"] == f"{os.getuid()}:{os.getgid()}"
        assert host["NetworkMode"] == "none"
        assert host["ShmSize"] == 16 * 1024**3
        assert host["Init"] is True
        binds = set(host["Binds"])
        assert {
            f"{data.resolve()}:/data:ro",
            f"{(tmp_path / 'artifacts').resolve()}:/artifacts:rw",
            f"{(tmp_path / 'results').resolve()}:/results:rw",
        } <= binds
        assert {"DISCO_TEST_MARKER=hello", "DISCO_EPOCH_SLEEP=300"} <= set(config["Env"])
        assert (
            config["Labels"][LABEL_STAGE].startswith("pretrain-")
            and config["Labels"][LABEL_OWNER_HOST] == socket.gethostname()
        )
        time.sleep(2)  # into the stage's work, past container start
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted: stopping and removing container" in stderr and "Traceback" not in stderr
    assert not labelled(engine, owned)
