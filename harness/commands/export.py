"""`disco-bench export STAGE --format official`: a finished stage's encoder as an official checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli import cli
from harness.errors import UserError
from harness.results import StageResult, load_result
from harness.workspace import RUNS_DIR

FORMATS = ("official",)


def find_result(results_dir: Path, stage: str) -> tuple[Path, StageResult]:
    """The stored result of the stage named `stage`, under any profile of `results_dir`."""
    found = sorted(results_dir.glob(f"*/stages/{stage}.json"))
    loaded = [(path, load_result(path)) for path in found]
    results = [(path, result) for path, result in loaded if result is not None]
    if not results:
        from disco.names import did_you_mean

        names = [path.stem for path in results_dir.glob("*/stages/*.json")]
        raise UserError(
            f"no finished stage '{stage}' under {results_dir}/*/stages{did_you_mean(stage, names)}; `disco-bench status` lists the stage names"
        )
    if len(results) > 1:
        raise UserError(
            f"stage '{stage}' is stored more than once ({', '.join(str(path) for path, _ in results)}); pass --results to pick one"
        )
    return results[0]


@cli.command()
@click.argument("stage")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="official",
    show_default=True,
    help="official: {'epoch','arch','state_dict'} with module.encoder_q.* keys, as DisCo/main.py saves (docs/protocol.md 5.1).",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), default=None, help="Output file (default: <STAGE>.pth.tar here)."
)
@click.option("--results", "results_dir", type=click.Path(path_type=Path), default=RUNS_DIR, show_default=True)
@click.option(
    "--artifacts", "artifacts_dir", type=click.Path(path_type=Path), default=Path("artifacts"), show_default=True
)
def export(stage: str, fmt: str, output: Path | None, results_dir: Path, artifacts_dir: Path) -> None:
    """Write the encoder of the finished STAGE (pretrain, distill, init or import) in the official
    checkpoint layout, for the official evaluation scripts or detectron2's converter."""
    path, result = find_result(results_dir, stage)
    checkpoint = result.artifacts.get("checkpoint")
    if checkpoint is None:
        raise UserError(
            f"stage '{stage}' ({result.stage.kind}) has no encoder checkpoint ({path}); export a pretrain, distill, init or import stage"
        )
    stage_dir = (artifacts_dir / checkpoint).parent
    if not (artifacts_dir / checkpoint).is_file():
        raise UserError(
            f"the checkpoint of stage '{stage}' is not at {artifacts_dir / checkpoint}; pass the --artifacts folder it was trained into"
        )
    from disco.checkpoint_io import save_checkpoint
    from disco.export import OFFICIAL_PREFIX, official_payload
    from disco.tasks.artifacts import load_encoder_artifact

    encoder, saved = load_encoder_artifact(stage_dir)
    payload = official_payload(encoder, saved["arch"], result.metrics.get("epochs"))
    target = output or Path(f"{stage}.pth.tar")
    try:
        save_checkpoint(target, payload)
    except OSError as exc:
        raise UserError(f"cannot write {target} ({exc.strerror or exc}); choose another --output") from None
    click.echo(
        f"wrote {target}: {len(payload['state_dict'])} tensors under {OFFICIAL_PREFIX} (arch '{payload['arch']}', head under '{encoder.head_name}', epoch {payload['epoch']})"
    )
