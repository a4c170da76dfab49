"""The reference run: a finished run's stage results committed under results/reference/<profile>/
with a MANIFEST.json (commit, hardware, seeds, wall time), so that a user's own run (in the
git-ignored runs/ directory) is reported beside it: this run, the reference run, the paper.

`disco-bench promote --profile tiny` makes the latest run the reference; results/README.md is the
reference's report."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.results import load_result
from harness.workspace import Workspace, atomic_write_json, read_json

DEFAULT_REFERENCE = Path("results/reference")
MANIFEST = "MANIFEST.json"


def reference_workspace(root: Path | None, profile: str) -> tuple[Workspace | None, str | None]:
    """The reference run of `profile` under `root`, and how the report names it; (None, None) if there is none."""
    if root is None or not (root / profile / "stages").is_dir():
        return None, None
    manifest = read_json(root / profile / MANIFEST)
    return Workspace(root / "artifacts", root), describe(root / profile, manifest if isinstance(manifest, dict) else {})


def describe(folder: Path, manifest: dict[str, Any]) -> str:
    commit = (manifest.get("git") or {}).get("commit") or "unknown commit"
    hardware = manifest.get("hardware") or {}
    parts = [f"commit {commit[:10]}", hardware.get("cpu") or "unknown CPU"]
    if hardware.get("torch_threads"):
        parts.append(f"{hardware['torch_threads']} threads")
    if manifest.get("seeds"):
        parts.append(f"seeds {','.join(str(seed) for seed in manifest['seeds'])}")
    if manifest.get("wall_time_s"):
        parts.append(f"{manifest['wall_time_s'] / 60:.1f} min of stage time")
    if manifest.get("promoted_at"):
        parts.append(f"promoted {manifest['promoted_at'][:10]}")
    return f"`{folder}` ({', '.join(parts)})"


def promote(run: Workspace, root: Path, profile: str) -> tuple[Path, dict[str, Any]]:
    """Copy the run's stage results of `profile` to root/<profile>/stages (replacing the previous
    reference's) and write the manifest. The run's own files are only read."""
    source = run.results / profile / "stages"
    results = sorted(source.glob("*.json")) if source.is_dir() else []
    loaded = [(path, load_result(path)) for path in results]
    valid = [(path, result) for path, result in loaded if result is not None]
    if not valid:
        raise UserError(
            f"no finished stage results under {source}; run `disco-bench run --profile {profile}` first (or pass --from)"
        )
    target = root / profile
    staging = target.with_name(f".{profile}.promoting")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "stages").mkdir(parents=True)
    for path, _ in valid:
        shutil.copy2(path, staging / "stages" / path.name)
    manifest = manifest_of([result for _, result in valid])
    atomic_write_json(staging / MANIFEST, manifest)
    previous = target.with_name(f".{profile}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    staging.rename(target)  # the new reference appears whole or not at all
    shutil.rmtree(previous, ignore_errors=True)
    return target, manifest


def manifest_of(results: list) -> dict[str, Any]:
    commits = {result.provenance.git.get("commit") for result in results}
    newest = max(results, key=lambda result: result.provenance.finished_at)
    return {
        "promoted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": newest.provenance.git | ({"mixed_commits": sorted(c for c in commits if c)} if len(commits) > 1 else {}),
        "hardware": newest.provenance.hardware,
        "packages": newest.provenance.packages,
        "seeds": sorted({result.provenance.seed for result in results}),
        "stages": len(results),
        "wall_time_s": round(sum(result.provenance.wall_time_s for result in results), 1),
    }
