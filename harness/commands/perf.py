"""`disco-bench perf`: images/s of the DisCo step, reference vs optimized, side by side."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from harness.cli import cli
from harness.config import DEFAULT_FILE, load_benchmarks
from harness.matrix import pick
from harness.provenance import git_state, hardware, package_versions
from harness.tables import print_table
from harness.workspace import atomic_write_json


@cli.command()
@click.option("--pair", default="r50-effb0", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda")
@click.option("--resolution", type=click.IntRange(min=16), default=32, show_default=True)
@click.option("--batch", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=3, show_default=True, help="Timed steps per round.")
@click.option(
    "--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="Interleaved reference/optimized rounds."
)
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True)
@click.option(
    "--teacher-bn",
    type=click.Choice(["train", "eval"]),
    default="train",
    show_default=True,
    help="eval enables the batched teacher call.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="Precision of the optimized side (bf16 autocast: a deviation); the reference is fp32.",
)
@click.option("--compile", "compile_models", is_flag=True, help="torch.compile student and teacher in optimized mode.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Loader workers of the reference (per-image) data path, as the tiny profile's.",
)
@click.option(
    "--save", type=click.Path(path_type=Path), default=None, help="Write the figures as JSON (e.g. results/perf/...)."
)
@click.option("--benchmarks", "benchmarks_file", type=click.Path(path_type=Path), default=DEFAULT_FILE)
def perf(
    pair: str,
    device: str,
    resolution: int,
    batch: int,
    steps: int,
    rounds: int,
    warmup: int,
    teacher_bn: str,
    precision: str,
    compile_models: bool,
    workers: int,
    save: Path | None,
    benchmarks_file: Path,
) -> None:
    """Measure steady-state images/s, the step breakdown and peak memory of reference vs optimized."""
    from disco.perf import compare, data_pipeline_pairs_per_s
    from harness.runner import resolve_device

    bench = load_benchmarks(benchmarks_file)
    pick(pair, bench.pairs, "pair")
    teacher, student = bench.teachers[bench.pairs[pair].teacher].arch, bench.students[bench.pairs[pair].student].arch
    torch_device = resolve_device(device)
    report = compare(
        teacher,
        student,
        resolution,
        batch,
        torch_device,
        steps,
        warmup,
        rounds,
        teacher_bn,
        compile_models,
        workers,
        precision,
    )
    report["data_pipeline_pairs_per_s"] = data_pipeline_pairs_per_s(resolution, batch, workers)
    report["batched_data_pairs_per_s"] = batch / (report["optimized"]["data_ms"] / 1000)
    if torch_device.type == "cpu":
        report["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["conditions"] = {
        "pair": pair,
        "teacher": teacher,
        "student": student,
        "device": device,
        "resolution": resolution,
        "batch": batch,
        "steps": steps,
        "rounds": rounds,
        "warmup": warmup,
        "teacher_bn": teacher_bn,
        "precision": precision,
        "workers": workers,
        "command": " ".join(["disco-bench", *sys.argv[2:]]) if len(sys.argv) > 1 else "disco-bench perf",
    }
    report["provenance"] = {"git": git_state(), "packages": package_versions(), "hardware": hardware(device)}
    print_report(Console(width=max(Console().width, 132)), report)
    if save:
        atomic_write_json(save, report)
        click.echo(f"saved {save}")


def print_report(console: Console, report: dict) -> None:
    c = report["conditions"]
    table = Table(title=f"DisCo step · {c['pair']} · {c['device']} · {c['resolution']} px · batch {c['batch']}")
    for column in (
        "mode",
        "images/s",
        "step ms",
        "data ms",
        "with data img/s",
        "student fwd",
        "teacher fwd",
        "key fwd",
        "backward",
        "optimizer",
        "peak MiB",
        "TFLOP/s",
    ):
        table.add_column(column, justify="right")
    for mode in ("reference", "optimized"):
        row = report[mode]
        b = row["breakdown_ms"]
        mem = f"{row['peak_memory_mb']:.0f}" if row["peak_memory_mb"] is not None else "-"
        table.add_row(
            mode,
            f"{row['images_per_s']:.1f}",
            f"{row['step_ms']:.1f}",
            f"{row['data_ms']:.1f}",
            f"{row['images_per_s_with_data']:.1f}",
            *(f"{b[k]:.1f}" for k in ("student_forward", "teacher_forward", "key_forward", "backward", "optimizer")),
            mem,
            f"{row['achieved_tflops']:.3f}",
        )
    print_table(console, table)
    console.print(
        f"speed-up optimized / reference: [bold]{report['speedup']:.2f}x[/] step alone, [bold]{report['speedup_with_data']:.2f}x[/] fed by each mode's data path (median of {c['rounds']} interleaved rounds)"
    )
    console.print(
        f"data pipeline alone (two augmented views per image): per-image in {c['workers']} worker(s) {report['data_pipeline_pairs_per_s']:.0f} images/s; "
        f"batched on the device {report['batched_data_pairs_per_s']:.0f} images/s"
    )
    if "peak_bf16_tflops" in report:
        console.print(
            f"achieved: {report['optimized']['achieved_tflops']:.1f} TFLOP/s = {100 * report['optimized']['fraction_of_bf16_peak']:.1f}% of the {report['peak_bf16_tflops']:.0f} TFLOP/s bf16 peak"
        )
    console.print(f"optimized options: {report['optimized']['options']}")
