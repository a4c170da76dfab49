"""DDP inside a stage, on CPU with gloo and two processes (docs/ddp.md): shuffle-BN and the queue
across ranks, gradients against the single-process maths, rank-0-only writes, resume, and a real
two-process torchrun of a smoke stage."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import multiprocessing as mp
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from disco import distributed
from disco.contrast import MomentumContrast
from disco.methods import DisCo, DisCoConfig, MoCoV2, MoCoV2Config
from disco.shuffle_bn import concat_all_gather, ddp_shuffled_encode, shuffled_encode
from disco.train import TrainRecipe, convert_student_sync_bn, ddp_step, per_rank_batch, train
from tests.conftest import REPO

WORLD = 2
CPU = torch.device("cpu")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry(rank: int, worker, out: Path, port: int) -> None:
    """What torchrun would set up for each rank; the worker joins the group when it is ready."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD)
    )
    torch.set_num_threads(1)
    try:
        worker(rank, out)
    except BaseException:
        distributed.shutdown(synchronize=False)  # the other rank may never reach a barrier
        raise
    distributed.shutdown()


def _spawn(worker, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(_entry, args=(worker, out, _free_port()), nprocs=WORLD, join=True)


# (a) + (b): shuffle-BN and the queue ------------------------------------------------------------


def _tagged(net: nn.Module):
    """Encode with column 0 (the sample's global index) carried through, to follow samples."""
    return lambda batch: torch.cat([batch[:, :1], net(batch)], dim=1)


def _collectives_worker(rank: int, out: Path) -> None:
    distributed.init_from_env(CPU)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6))
    reference_net = copy.deepcopy(net)
    everything = torch.randn(8, 5)
    everything[:, 0] = torch.arange(8.0)
    local = everything.chunk(WORLD)[rank]
    seen: list[torch.Tensor] = []
    tagged = _tagged(net)

    def encode(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch[:, 0].clone())
        return tagged(batch)

    torch.manual_seed(100 + rank)  # every rank draws a different permutation; rank 0's must win
    keys = ddp_shuffled_encode(encode, local)
    rank0_perm = torch.randperm(8, generator=torch.Generator().manual_seed(100))
    assert not torch.equal(rank0_perm, torch.randperm(8, generator=torch.Generator().manual_seed(101)))
    assert torch.equal(concat_all_gather(seen[0]).long(), rank0_perm), "ranks encoded slices of rank 0's permutation"
    assert torch.equal(keys[:, 0], local[:, 0]), "keys come back in this rank's query order"
    emulated = shuffled_encode(
        _tagged(reference_net), everything, groups=WORLD, generator=torch.Generator().manual_seed(100)
    )
    torch.testing.assert_close(keys, emulated.chunk(WORLD)[rank], rtol=0, atol=0)

    contrast = MomentumContrast(nn.Linear(3, 4), queue_size=16, momentum=0.9, temperature=0.2, bn_group_size=4, dim=4)
    contrast.enqueue(_rank_keys(rank))
    assert torch.equal(contrast.queue[:, :8], torch.cat([_rank_keys(r) for r in range(WORLD)]).T)
    assert int(contrast.queue_ptr) == 8


def _rank_keys(rank: int) -> torch.Tensor:
    return F.normalize(torch.arange(16.0).view(4, 4) + 100 * rank, dim=1)


def test_shuffle_bn_uses_rank0_permutation_matches_emulation_and_queue_is_in_rank_order(tmp_path):
    _spawn(_collectives_worker, tmp_path)


# (c): gradients against the single-process maths ------------------------------------------------

GRADIENT_CASES = {  # name: (method, mse_per_sample_weight, ce_weight, DDP grad x factor == 1-process grad)
    "mocov2": ("mocov2", None, 1.0, 1.0),
    "disco_w32": ("disco", 32.0, 1.0, 1.0),
    "disco_literal_mse_sum": ("disco", None, 0.0, float(WORLD)),
}


def _toy_encoder() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 128))  # no BN: batch composition is irrelevant


def _toy_method(kind: str, weight: float | None, ce_weight: float) -> nn.Module:
    torch.manual_seed(0)
    if kind == "mocov2":
        return MoCoV2(_toy_encoder(), MoCoV2Config(queue_size=16, momentum=0.9, bn_group_size=4))
    config = DisCoConfig(
        queue_size=16, momentum=0.9, bn_group_size=4, mse_per_sample_weight=weight, ce_weight=ce_weight
    )
    return DisCo(_toy_encoder(), _toy_encoder(), config)


def _student_grads(method: nn.Module, step, view1: torch.Tensor, view2: torch.Tensor) -> list[torch.Tensor]:
    method.train()
    step(view1, view2)["loss"].backward()
    return [param.grad.clone() for param in method.student.parameters()]


def _gradient_worker(rank: int, out: Path) -> None:
    torch.manual_seed(1)
    view1, view2 = torch.randn(8, 3, 2, 2), torch.randn(8, 3, 2, 2)
    single = {}
    for name, (kind, weight, ce_weight, _) in GRADIENT_CASES.items():  # before joining: one process
        method = _toy_method(kind, weight, ce_weight)
        single[name] = (_student_grads(method, method.training_step, view1, view2), method.contrast.queue.clone())
    distributed.init_from_env(CPU)
    mine = slice(rank * 4, (rank + 1) * 4)
    for name, (kind, weight, ce_weight, factor) in GRADIENT_CASES.items():
        method = _toy_method(kind, weight, ce_weight)
        grads = _student_grads(method, ddp_step(method, CPU), view1[mine], view2[mine])
        expected, expected_queue = single[name]
        for got, want in zip(grads, expected):
            torch.testing.assert_close(
                got * factor, want, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}"
            )
        torch.testing.assert_close(method.contrast.queue, expected_queue, rtol=1e-5, atol=1e-6)
    # the literal sum with CE on: the layout changes the objective, so the gradients differ
    method = _toy_method("disco", None, 1.0)
    literal = _student_grads(method, ddp_step(method, CPU), view1[mine], view2[mine])
    reference = _toy_method("disco", None, 1.0)
    distributed.shutdown()
    assert not torch.allclose(
        literal[0], _student_grads(reference, reference.training_step, view1, view2)[0], rtol=1e-3
    )


def test_ddp_gradients_equal_single_process_for_means_and_literal_mse_sum_scales_with_world_size(tmp_path):
    _spawn(_gradient_worker, tmp_path)


# (d): training: per-rank batches, rank-0-only writes, identical ranks, resume; the runner ---------


class IndexedViews(Dataset):
    """16 fixed image pairs; pixel [0, 0, 0] of each view holds the sample index."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int):
        generator = torch.Generator().manual_seed(index)
        view1, view2 = torch.randn(2, 3, 4, 4, generator=generator)
        view1[0, 0, 0] = view2[0, 0, 0] = index
        return (view1, view2), index


class RecordingMoCo(MoCoV2):
    def training_step(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.append(view1[:, 0, 0, 0].long().tolist())
        return super().training_step(view1, view2)


def _bn_method() -> RecordingMoCo:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 128))
    method = RecordingMoCo(encoder, MoCoV2Config(queue_size=16, momentum=0.9, bn_group_size=4))
    method.seen = []
    return method


def _logging_save(log: Path, rank: int, real):
    def save(*args, **kwargs):
        with open(log, "a") as handle:
            handle.write(f"{rank}\n")
        return real(*args, **kwargs)

    return save


def _training_worker(rank: int, out: Path) -> None:
    import disco.tasks
    import disco.train
    import harness.runner

    distributed.init_from_env(CPU)
    disco.train.save_keeping_previous = _logging_save(
        out / "checkpoint_writes", rank, disco.train.save_keeping_previous
    )
    # constant lr: the run stopped after 2 epochs has the same schedule as the 3-epoch ones
    recipe = TrainRecipe(epochs=3, batch_size=8, lr=0.1, schedule="constant")
    straight, interrupted, resumed = _bn_method(), _bn_method(), _bn_method()
    state = train(straight, IndexedViews(), recipe, out / "straight", seed=5, device=CPU)
    train(interrupted, IndexedViews(), replace(recipe, epochs=2), out / "resumed", seed=5, device=CPU)
    resumed_state = train(resumed, IndexedViews(), recipe, out / "resumed", seed=5, device=CPU)
    torch.save(
        {
            "straight": straight.state_dict(),
            "resumed": resumed.state_dict(),
            "seen": straight.seen,
            "history": state.history,
            "resumed_history": resumed_state.history,
        },
        out / f"rank{rank}.pt",
    )

    spec = {
        "name": "toy",
        "kind": "pretrain",
        "profile": "toy",
        "key": "k" * 64,
        "config": {"seed": 5},
        "runtime": {"device": "cpu"},
        "stage_dir": "stages/toy",
        "result": "toy/toy.json",
        "inputs": {},
    }
    harness.runner.atomic_write_json(out / "spec.json", spec)
    harness.runner.atomic_write_json = _logging_save(out / "result_writes", rank, harness.runner.atomic_write_json)
    disco.tasks.TASKS["pretrain"] = disco.tasks.Task(dict, f"{__name__}:_toy_task")
    workspace = harness.runner.Workspace(out / "artifacts", out / "results")
    first = harness.runner.run_stage_from_spec(out / "spec.json", workspace)
    again = harness.runner.run_stage_from_spec(out / "spec.json", workspace)
    torch.save({"first": first, "again": again}, out / f"runner{rank}.pt")


def _toy_task(config, context):
    state = train(
        _bn_method(),
        IndexedViews(),
        TrainRecipe(epochs=1, batch_size=8),
        context.stage_dir,
        config["seed"],
        context.device,
    )
    return (
        {"final_loss": state.history[-1]["loss"], "epochs": state.epoch},
        state.history,
        {"checkpoint": "checkpoint.pt"},
    )


def test_ddp_training_splits_batches_writes_once_keeps_ranks_identical_and_resumes_exactly(tmp_path):
    _spawn(_training_worker, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    # 3 + 2 + 1 epochs saved, by rank 0 only; the spec write and one result write, by rank 0 only
    assert (tmp_path / "checkpoint_writes").read_text().split() == ["0"] * 7  # + the runner's 1-epoch toy stage
    assert (tmp_path / "result_writes").read_text().split() == ["0"]  # the second run reuses it
    for epoch in range(3):  # each step sees a per-rank batch of 4; an epoch covers the data once
        steps = [batch for r in ranks for batch in r["seen"][2 * epoch : 2 * epoch + 2]]
        assert all(len(batch) == 4 for batch in steps)
        assert sorted(i for batch in steps for i in batch) == list(range(16))
    assert ranks[0]["seen"][0] != ranks[1]["seen"][0]
    for name in ("straight", "resumed"):
        for key, value in ranks[0][name].items():
            assert torch.equal(value, ranks[1][name][key]), f"{name}: ranks differ in {key}"
    for key, value in ranks[0]["straight"].items():
        assert torch.equal(value, ranks[0]["resumed"][key]), f"resume differs in {key}"
    assert (
        [h["loss"] for h in ranks[0]["history"]]
        == [h["loss"] for h in ranks[1]["history"]]
        == [h["loss"] for h in ranks[0]["resumed_history"]]
    )
    runs = [torch.load(tmp_path / f"runner{r}.pt", weights_only=False) for r in range(WORLD)]
    assert runs[0]["first"] == runs[1]["first"] == runs[0]["again"] == runs[1]["again"]
    assert json.loads((tmp_path / "results" / "toy" / "toy.json").read_text()) == runs[0]["first"]


# cheap checks without processes -------------------------------------------------------------------


def test_global_batch_must_split_evenly_across_ranks():
    assert per_rank_batch(256, 8) == 32
    with pytest.raises(ValueError, match="not divisible by the world size 3"):
        per_rank_batch(256, 3)


def test_sync_bn_converts_the_query_encoder_only_and_keeps_state_dict_keys():
    torch.manual_seed(0)
    method = DisCo(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)),
        nn.Sequential(nn.BatchNorm2d(3)),
        DisCoConfig(queue_size=16, bn_group_size=4),
    )
    keys = method.state_dict().keys()
    convert_student_sync_bn(method)
    assert isinstance(method.student[1], nn.SyncBatchNorm)
    assert type(method.contrast.encoder_k[1]) is nn.BatchNorm2d and type(method.teacher[0]) is nn.BatchNorm2d
    assert method.state_dict().keys() == keys


def test_torchrun_command_single_node_is_standalone_and_multi_node_needs_an_endpoint():
    workspace = type("Workspace", (), {"artifacts": Path("a"), "results": Path("r")})()
    command = distributed.torchrun_command("s.json", workspace, nproc=8)
    assert command[1:] == [
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=8",
        "--nnodes=1",
        "--standalone",
        "-m",
        "harness",
        "run-stage",
        "s.json",
        "--artifacts",
        "a",
        "--results",
        "r",
    ]
    multi = distributed.torchrun_command(
        "s.json", workspace, nproc=8, nnodes=2, rdzv_endpoint="node1:29400", rdzv_id="job7"
    )
    assert "--rdzv-endpoint=node1:29400" in multi and "--rdzv-backend=c10d" in multi and "--standalone" not in multi
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        distributed.torchrun_command("s.json", workspace, nproc=8, nnodes=2)


# end to end: a real two-process torchrun of a smoke stage -----------------------------------------


def test_torchrun_two_processes_run_a_smoke_stage_and_write_one_result(tmp_path):
    from harness.config import load_benchmarks
    from harness.matrix import Planner
    from harness.workspace import Workspace

    workspace = Workspace(tmp_path / "artifacts", tmp_path / "results")
    stage = Planner(load_benchmarks(), "tiny", smoke=True, device="cpu").baseline("r18", 0)
    spec = stage.write_spec(workspace)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        distributed.torchrun_command(spec, workspace, nproc=WORLD),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count(": done") == WORLD  # both ranks finished the same stage
    results = list(workspace.results.rglob("*.json"))
    assert results == [workspace.result_path(stage.profile, stage.name)]
    payload = json.loads(results[0].read_text())
    assert payload["stage"]["key"] == stage.key and payload["metrics"]["epochs"] == 1
    stage_dir = workspace.stage_dir(stage.name, stage.key)
    assert torch.load(stage_dir / "checkpoint.pt", weights_only=False)["epoch"] == 1
    assert not list(stage_dir.glob(".*.tmp")) and not list(workspace.results.rglob(".*.tmp"))
