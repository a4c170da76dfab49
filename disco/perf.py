"""Measure the DisCo training step: reference (the official computation) against optimized, side by
side in one process, with a per-phase breakdown, peak memory, FLOP/s, the data pipeline alone, and
the step fed by each mode's own data path (per-image views from loader workers, or views drawn
batched on the device), which is what a training stage sees."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import Any, cast

import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from disco.data.augment import mocov2_augmentation
from disco.data.batched_augment import BatchedMoCoV2Augmentation
from disco.data.datasets import TwoViews
from disco.data.synthetic import synthetic_images
from disco.methods import DisCo, DisCoConfig
from disco.methods.registry import TeacherBN
from disco.models import build_encoder
from disco.speed import SpeedOptions, apply_to_modules

PHASES = ("student_forward", "teacher_forward", "key_forward", "backward", "optimizer")
# dense bf16 tensor-core peaks (TFLOP/s), for the achieved-fraction figure
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}


Views = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Bench:
    mode: str
    method: DisCo
    optimizer: torch.optim.Optimizer
    options: SpeedOptions


def build_bench(
    mode: str,
    teacher: str,
    student: str,
    resolution: int,
    batch: int,
    device: torch.device,
    teacher_bn: str,
    compile_models: bool,
    precision: str = "fp32",
) -> Bench:
    torch.manual_seed(0)
    # the reference is the official computation, fp32 whatever the optimized side is measured in
    options = SpeedOptions.for_mode(
        mode, device, teacher_bn, compile_models, precision if mode == "optimized" else "fp32"
    )
    config = DisCoConfig(queue_size=batch * 16, teacher_bn=cast(TeacherBN, teacher_bn))  # a CLI choice
    method = DisCo(
        build_encoder(student, "disco", image_size=resolution),
        build_encoder(teacher, "mocov2", image_size=resolution),
        config,
        options,
    ).to(device)
    apply_to_modules([method], options, device)
    method.train()
    optimizer = torch.optim.SGD(
        [p for p in method.parameters() if p.requires_grad], lr=0.03, momentum=0.9, weight_decay=1e-4
    )
    return Bench(mode, method, optimizer, options)


def step(bench: Bench, views: tuple[torch.Tensor, torch.Tensor]) -> None:
    loss = bench.method.training_step(*views)["loss"]
    bench.optimizer.zero_grad(set_to_none=True)
    with torch.profiler.record_function("backward"):
        loss.backward()
    with torch.profiler.record_function("optimizer"):
        bench.optimizer.step()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(bench: Bench, feed: Iterator[Views], steps: int, device: torch.device) -> float:
    """Seconds per step, each step on the feed's next views (`itertools.repeat(views)`: the step alone)."""
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step(bench, next(feed))
    synchronize(device)
    return (time.perf_counter() - started) / steps


def data_feed(
    options: SpeedOptions, resolution: int, batch: int, device: torch.device, workers: int, batches: int = 8
) -> Iterator[Views]:
    """Endless batches of two views, from this mode's data path over uint8 images."""
    images = synthetic_images(batch * batches, resolution)
    if options.batched_augment:
        augment, raw = BatchedMoCoV2Augmentation(resolution).to(device), images.images.to(device)
        while True:
            for chunk in raw.split(batch):
                yield augment(chunk), augment(chunk)
    loader = DataLoader(
        TwoViews(images, mocov2_augmentation(resolution)),
        batch_size=batch,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )
    while True:
        for (view1, view2), _ in loader:
            yield view1.to(device, non_blocking=True), view2.to(device, non_blocking=True)


def time_data(feed: Iterator[Views], batches: int, device: torch.device) -> float:
    synchronize(device)
    started = time.perf_counter()
    for _ in range(batches):
        next(feed)
    synchronize(device)
    return (time.perf_counter() - started) / batches


def breakdown_ms(bench: Bench, views: Views, steps: int, device: torch.device) -> dict[str, float]:
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else []
    )
    with torch.profiler.profile(activities=activities) as profiler:
        for _ in range(steps):
            step(bench, views)
        synchronize(device)
    totals = {phase: 0.0 for phase in PHASES}
    for event in profiler.key_averages():
        if event.key in totals:
            device_us = getattr(event, "device_time_total", 0.0) if device.type == "cuda" else 0.0
            totals[event.key] = max(event.cpu_time_total, device_us) / 1000.0 / steps
    return totals


def step_flops(bench: Bench, views: Views) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        step(bench, views)
    return float(counter.get_total_flops())


def peak_memory_mb(bench: Bench, views: Views, device: torch.device) -> float | None:
    if device.type != "cuda":
        return None  # CPU peak RSS is per process: see the perf command's child-process figure
    torch.cuda.reset_peak_memory_stats(device)
    step(bench, views)
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def data_pipeline_pairs_per_s(resolution: int, batch: int, workers: int, batches: int = 8) -> float:
    """Two augmented views per image (MoCo-v2 aug-plus), from uint8 images, on its own."""
    dataset = TwoViews(synthetic_images(batch * batches, resolution), mocov2_augmentation(resolution))
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers)
    started = time.perf_counter()
    count = sum(len(labels) for _, labels in loader)
    return count / (time.perf_counter() - started)


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def compare(
    teacher: str,
    student: str,
    resolution: int,
    batch: int,
    device: torch.device,
    steps: int,
    warmup: int,
    rounds: int,
    teacher_bn: str = "train",
    compile_models: bool = False,
    workers: int = 1,
    precision: str = "fp32",
) -> dict:
    torch.backends.cudnn.benchmark = True  # as the official scripts set it, for both modes
    benches = [
        build_bench(mode, teacher, student, resolution, batch, device, teacher_bn, compile_models, precision)
        for mode in ("reference", "optimized")
    ]
    feeds = {bench.mode: data_feed(bench.options, resolution, batch, device, workers) for bench in benches}
    views = (
        torch.randn(batch, 3, resolution, resolution, device=device),
        torch.randn(batch, 3, resolution, resolution, device=device),
    )
    for bench in benches:
        for _ in range(warmup):
            step(bench, views)
            step(bench, next(feeds[bench.mode]))
    seconds: dict[str, list[float]] = {bench.mode: [] for bench in benches}
    fed: dict[str, list[float]] = {bench.mode: [] for bench in benches}
    for _ in range(rounds):  # interleaved rounds: both modes see the same machine noise
        for bench in benches:
            seconds[bench.mode].append(time_steps(bench, repeat(views), steps, device))
            fed[bench.mode].append(time_steps(bench, feeds[bench.mode], steps, device))
    report: dict[str, Any] = {}
    for bench in benches:
        median, fed_median = statistics.median(seconds[bench.mode]), statistics.median(fed[bench.mode])
        flops = step_flops(bench, views)
        report[bench.mode] = {
            "images_per_s": batch / median,
            "step_ms": 1000 * median,
            "step_ms_rounds": [1000 * s for s in seconds[bench.mode]],
            "data_ms": 1000 * time_data(feeds[bench.mode], 4, device),
            "images_per_s_with_data": batch / fed_median,
            "step_with_data_ms_rounds": [1000 * s for s in fed[bench.mode]],
            "breakdown_ms": breakdown_ms(bench, views, max(1, steps // 2), device),
            "peak_memory_mb": peak_memory_mb(bench, views, device),
            "flops_per_step": flops,
            "achieved_tflops": flops / median / 1e12,
            "options": bench.options.describe(),
        }
    report["speedup"] = report["optimized"]["images_per_s"] / report["reference"]["images_per_s"]
    report["speedup_with_data"] = (
        report["optimized"]["images_per_s_with_data"] / report["reference"]["images_per_s_with_data"]
    )
    peak = peak_tflops(device)
    if peak:
        for mode in ("reference", "optimized"):
            report[mode]["fraction_of_bf16_peak"] = report[mode]["achieved_tflops"] / peak
        report["peak_bf16_tflops"] = peak
    return report
