"""`disco-bench perf`: both modes measured, with and without their data paths, and saved."""

import json

from tests.conftest import run_cli


def test_perf_reports_both_modes_their_data_paths_and_the_ratios(monkeypatch, capsys, tmp_path):
    saved = tmp_path / "perf.json"
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "perf",
        "--pair",
        "r50-effb0",
        "--device",
        "cpu",
        "--resolution",
        "16",
        "--batch",
        "4",
        "--steps",
        "1",
        "--rounds",
        "1",
        "--warmup",
        "0",
        "--workers",
        "0",
        "--save",
        str(saved),
    )
    assert code == 0, err
    report = json.loads(saved.read_text())
    for mode in ("reference", "optimized"):
        row = report[mode]
        assert row["images_per_s"] > 0 and row["images_per_s_with_data"] > 0 and row["data_ms"] > 0
        assert set(row["breakdown_ms"]) == {
            "student_forward",
            "teacher_forward",
            "key_forward",
            "backward",
            "optimizer",
        }
    assert report["optimized"]["options"]["batched_augment"] and not report["reference"]["options"]["batched_augment"]
    assert abs(report["speedup"] - report["optimized"]["images_per_s"] / report["reference"]["images_per_s"]) < 1e-9
    assert report["data_pipeline_pairs_per_s"] > 0 and report["batched_data_pairs_per_s"] > 0
    assert report["conditions"]["resolution"] == 16 and report["provenance"]["packages"]["torch"]
    assert "speed-up optimized / reference" in out and "fed by each mode's data path" in out
