"""`disco-bench validate`: every error at once, each as FILE:LINE: KEY.PATH: expectation (did you mean)."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from harness.config import load_benchmarks
from harness.errors import UserError
from harness.validate import validate_file, validate_text
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
REAL_FILE = REPO / "benchmarks.yaml"
PROBLEM_LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+): (?P<path>\S+): (?P<message>.+)$")


@pytest.fixture
def data() -> dict:
    """The real matrix as plain data, to be broken one field at a time and dumped one key per line."""
    return yaml.safe_load(REAL_FILE.read_text())


def dump(data: dict, tmp_path: Path) -> tuple[Path, str]:
    text = yaml.safe_dump(data, sort_keys=False)
    path = tmp_path / "benchmarks.yaml"
    path.write_text(text)
    return path, text


def line_of(text: str, fragment: str) -> int:
    matches = [number for number, line in enumerate(text.splitlines(), start=1) if fragment in line]
    assert len(matches) == 1, f"{fragment!r} found on lines {matches}"
    return matches[0]


def only_problem(path: Path):
    outcome = validate_file(path)
    assert outcome.bench is None and len(outcome.problems) == 1, [p.render(path) for p in outcome.problems]
    return outcome.problems[0]


def test_the_real_benchmarks_yaml_is_valid():
    outcome = validate_file(REAL_FILE)
    raw = yaml.safe_load(REAL_FILE.read_text())
    assert outcome.problems == [] and outcome.bench is not None
    expected = f"valid ({len(raw['pairs'])} pairs, {len(raw['teachers'])} teachers, {len(raw['students'])} students, {len(raw['profiles'])} profiles)"
    assert outcome.summary("benchmarks.yaml") == f"benchmarks.yaml: {expected}"


def test_misspelled_key_gives_its_line_and_the_nearest_field(data, tmp_path):
    data["teachers"]["r50"]["archh"] = data["teachers"]["r50"].pop("arch")
    path, text = dump(data, tmp_path)
    problem = only_problem(path)  # the consequent "arch: required field missing" is folded into this one
    assert (problem.line, problem.path) == (line_of(text, "archh:"), "teachers.r50.archh")
    assert problem.message.startswith("unknown key; expected one of: arch, pretrain") and problem.message.endswith(
        "(did you mean 'arch'?)"
    )


def test_bad_reference_suggests_the_nearest_teacher(data, tmp_path):
    data["pairs"]["r50-mbv3"]["teacher"] = "r05"
    path, text = dump(data, tmp_path)
    problem = only_problem(path)
    assert (problem.line, problem.path) == (line_of(text, "teacher: r05"), "pairs.r50-mbv3.teacher")
    assert "unknown teacher 'r05'" in problem.message and problem.message.endswith("(did you mean 'r50'?)")


def test_wrong_type_says_what_was_expected(data, tmp_path):
    data["profiles"]["tiny-mocov2"]["pretrain"]["epochs"] = "six"
    path, text = dump(data, tmp_path)
    problem = only_problem(path)
    assert (problem.line, problem.path) == (line_of(text, "epochs: six"), "profiles.tiny-mocov2.pretrain.epochs")
    assert "expected a valid integer" in problem.message and "got 'six'" in problem.message


def test_dali_loader_on_an_in_memory_set_is_one_line_with_the_fix(data, tmp_path):
    data["profiles"]["tiny-mocov2"]["data"]["loader"] = "dali"
    path, text = dump(data, tmp_path)
    problem = only_problem(path)
    assert problem.path == "profiles.tiny-mocov2.data"
    assert (
        problem.message
        == "loader: dali reads image files, so it needs source: imagenet, not embedded; use loader: torch"
    )


def test_reference_number_without_source(data, tmp_path):
    data["reference"]["baselines"]["effb0"] = {"top1": 41.5, "confidence": "high"}
    path, text = dump(data, tmp_path)
    problem = only_problem(path)
    assert (problem.line, problem.path) == (line_of(text, "top1: 41.5"), "reference.baselines.effb0.top1")
    assert "needs a 'source'" in problem.message and "seed_abstract" in problem.message


def test_unknown_source_and_confidence_get_did_you_mean_and_nulls_need_nothing(data, tmp_path):
    data["reference"]["baselines"]["effb0"] = {"top1": 41.5, "source": "seed_abstrct", "confidence": "hgh"}
    data["reference"]["baselines"]["mbv3"] = {"top1": None}
    path, _ = dump(data, tmp_path)
    messages = {p.path: p.message for p in validate_file(path).problems}
    assert set(messages) == {"reference.baselines.effb0.source", "reference.baselines.effb0.confidence"}
    assert messages["reference.baselines.effb0.source"].endswith("(did you mean 'seed_abstract'?)")
    assert messages["reference.baselines.effb0.confidence"].endswith("(did you mean 'high'?)")


def test_a_gain_needs_its_own_source(data, tmp_path):
    data["reference"]["pairs"]["r50-effb0"]["disco"] = {"top1": None, "gain_over_baseline": 19.7}
    path, _ = dump(data, tmp_path)
    assert {p.message.split(" needs")[0] + "|" + p.path for p in validate_file(path).problems} == {
        "gain_over_baseline = 19.7|reference.pairs.r50-effb0.disco.gain_over_baseline"
    }


def test_several_errors_reported_at_once_in_line_order(data, tmp_path):
    data["teachers"]["r50"]["archh"] = data["teachers"]["r50"].pop("arch")
    data["students"]["xcitt"]["arch"] = "xcit_t"
    data["pairs"]["r50-mbv3"]["teacher"] = "r05"
    data["default_pairs"] = ["r50-efb0"]
    data["profiles"]["tiny-mocov2"]["pretrain"]["epochs"] = "six"
    data["reference"]["baselines"]["effb0"] = {"top1": 41.5, "confidence": "high"}
    path, _ = dump(data, tmp_path)
    outcome = validate_file(path)
    paths = [p.path for p in outcome.problems]
    assert paths == [
        "teachers.r50.archh",
        "students.xcitt.arch",
        "pairs.r50-mbv3.teacher",
        "default_pairs[0]",
        "profiles.tiny-mocov2.pretrain.epochs",
        "reference.baselines.effb0.top1",
    ]
    assert [p.line for p in outcome.problems] == sorted(p.line for p in outcome.problems)
    assert (
        "(did you mean 'xcitt'?)" in outcome.problems[1].message
        and "(did you mean 'r50-effb0'?)" in outcome.problems[3].message
    )
    assert outcome.summary(path) == f"{path}: 6 errors"


def test_flow_style_lines_of_the_real_file(tmp_path):
    text = REAL_FILE.read_text().replace("default_pairs: [r50-effb0]", "default_pairs: [r50-efb0]")
    problem = only_problem(write(tmp_path, text))
    assert (problem.line, problem.path) == (line_of(text, "default_pairs:"), "default_pairs[0]")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "benchmarks.yaml"
    path.write_text(text)
    return path


def test_yaml_syntax_error_and_duplicate_key_have_lines():
    assert validate_text("a: [1, 2\nb: 3\n").problems[0].line == 2
    duplicate = next(
        p for p in validate_text(REAL_FILE.read_text() + "pairs: {}\n").problems if "duplicate" in p.message
    )
    assert duplicate.path == "pairs" and duplicate.line == len(REAL_FILE.read_text().splitlines()) + 1


def test_load_benchmarks_raises_the_first_problem_with_file_and_line(data, tmp_path):
    data["pairs"]["r50-mbv3"]["teacher"] = "r05"
    path, text = dump(data, tmp_path)
    with pytest.raises(UserError) as caught:
        load_benchmarks(path)
    assert caught.value.format_message().startswith(
        f"{path}:{line_of(text, 'teacher: r05')}: pairs.r50-mbv3.teacher: unknown teacher 'r05'"
    )


def test_cli_prints_every_error_then_a_summary_and_exits_2(data, tmp_path, monkeypatch, capsys):
    data["teachers"]["r50"]["archh"] = data["teachers"]["r50"].pop("arch")
    data["pairs"]["r50-mbv3"]["teacher"] = "r05"
    path, _ = dump(data, tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "validate", str(path))
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err
    assert all(PROBLEM_LINE.match(line) and line.startswith(f"{path}:") for line in lines[:-1]) and len(lines) == 3
    assert lines[-1] == f"{path}: 2 errors"


def test_cli_valid_file_exits_0(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "validate", str(REAL_FILE))
    assert code == 0 and f"{REAL_FILE}: valid (" in out


def test_cli_missing_file_is_one_error_line(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == 2 and err.strip().splitlines() == [
        f"error: {tmp_path / 'nope.yaml'}: file not found; pass the matrix file (default: benchmarks.yaml in the repository root)"
    ]


def test_a_misspelled_section_is_one_error_without_cascades(data, tmp_path):
    data["pair"] = data.pop("pairs")  # default_pairs and reference.pairs now name pairs that "do not exist"
    path, text = dump(data, tmp_path)
    problem = only_problem(path)
    assert (problem.line, problem.path) == (line_of(text, "pair:"), "pair") and problem.message.endswith(
        "(did you mean 'pairs'?)"
    )


# ---------------------------------------------------------------- what a run would refuse, caught by validate


@pytest.mark.parametrize(
    ("break_it", "fragment", "path", "expected"),
    [
        (
            lambda d: d["profiles"]["tiny-mocov2"]["mocov2"].update(queue_size=4000),
            "queue_size: 4000",
            "profiles.tiny-mocov2.mocov2.queue_size",
            "queue_size 4000 must be a multiple of pretrain.batch_size 64",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["mocov2"].update(bn_group_size=48),
            "bn_group_size: 48",
            "profiles.tiny-mocov2.mocov2.bn_group_size",
            "must split into whole BN groups",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["eval_recipes"]["knn"].update(k=-5),
            "k: -5",
            "profiles.tiny-mocov2.eval_recipes.knn.k",
            "k >= 1, temperature > 0 and chunk_size >= 1, got k=-5",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["eval_recipes"]["knn"].update(kk=200),
            "kk: 200",
            "profiles.tiny-mocov2.eval_recipes.knn.kk",
            "unknown KnnRecipe field (did you mean 'k'?)",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["eval_recipes"].update(knnn={"k": 20}),
            "knnn:",
            "profiles.tiny-mocov2.eval_recipes.knnn",
            "no evaluation 'knnn' is implemented (did you mean 'knn'?)",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["eval_recipes"]["detection"].update(iterations="many"),
            "iterations: many",
            "profiles.tiny-mocov2.eval_recipes.detection.iterations",
            "expected a valid integer",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["eval_recipes"]["transfer_digits"].update(epochz=3),
            "epochz: 3",
            "profiles.tiny-mocov2.eval_recipes.transfer_digits.epochz",
            "unknown TransferRecipe field (did you mean 'epochs'?)",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["eval_recipes"]["semi_finetune_1pct"].update(eval_every=0),
            "eval_every: 0",
            "profiles.tiny-mocov2.eval_recipes.semi_finetune_1pct.eval_every",
            "eval_every >= 1",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["disco"].update(mse_per_sample_weight=-1.0),
            "mse_per_sample_weight: -1.0",
            "profiles.tiny-mocov2.disco.mse_per_sample_weight",
            "greater than or equal to 0",
        ),
        (
            lambda d: d["evaluations"].update(knnn={"description": "x"}),
            "knnn:",
            "evaluations.knnn",
            "no evaluation 'knnn' is implemented",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["eval_recipes"].pop("transfer_digits"),
            ("  tiny-mocov2:", "- transfer_digits"),
            "profiles.tiny-mocov2.evals[4]",
            "'transfer_digits' has no recipe",
        ),
    ],
    ids=[
        "queue",
        "bn-group",
        "knn-k",
        "knn-unknown-field",
        "recipe-for-an-unknown-evaluation",
        "recipe-type",
        "recipe-field",
        "finetune",
        "mse-weight",
        "unimplemented",
        "no-recipe",
    ],
)
def test_values_a_run_would_refuse_are_caught_with_file_and_line(data, tmp_path, break_it, fragment, path, expected):
    break_it(data)
    written, text = dump(data, tmp_path)
    problem = only_problem(written)
    line = line_after(text, *fragment) if isinstance(fragment, tuple) else line_of(text, fragment)
    assert (problem.line, problem.path) == (line, path)
    assert expected in problem.message, problem.message


def test_a_top_level_list_is_one_problem(tmp_path):
    problem = only_problem(write(tmp_path, "- schema_version: 1\n- teachers: {}\n"))
    assert (
        (problem.line, problem.path) == (1, "(document)")
        and "expected a mapping of the sections" in problem.message
        and "got list" in problem.message
    )


def test_unknown_precision_gives_its_line_and_the_choices(data, tmp_path):
    data["profiles"]["paper"]["precision"] = "fp16"
    path, text = dump(data, tmp_path)
    problem = only_problem(path)
    assert (problem.line, problem.path) == (line_of(text, "precision: fp16"), "profiles.paper.precision")
    assert problem.message.startswith("expected one of: fp32, bf16, got 'fp16'")
    code, _, err = run_cli_validate(path)
    assert code == 2 and f"{path}:{problem.line}: profiles.paper.precision: expected one of: fp32, bf16" in err


def run_cli_validate(path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "harness", "validate", str(path)], capture_output=True, text=True, cwd=REPO
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_a_teacher_is_pretrained_by_an_implemented_pretraining_method(data, tmp_path):
    data["teachers"]["r101"]["pretrain"] = "disco"  # a method, but a distillation one
    path, text = dump(data, tmp_path)
    problem = only_problem(path)
    assert (problem.line, problem.path) == (line_of(text, "pretrain: disco"), "teachers.r101.pretrain")
    assert problem.message.startswith("unknown pretraining method 'disco'; expected one of: mocov2")


def test_a_released_checkpoint_names_a_teacher_of_the_matrix(data, tmp_path):
    checkpoints = data["profiles"]["paper"]["teacher_checkpoints"]
    checkpoints["r50swv"] = checkpoints.pop("r50swav")
    path, text = dump(data, tmp_path)
    problem = only_problem(path)
    assert (problem.line, problem.path) == (line_of(text, "r50swv:"), "profiles.paper.teacher_checkpoints.r50swv")
    assert "unknown teacher 'r50swv'" in problem.message and "did you mean 'r50swav'" in problem.message


def test_evaluation_archs_must_be_architectures(data, tmp_path):
    data["evaluations"]["detection_voc"]["archs"] = ["r18", "r43"]
    path, text = dump(data, tmp_path)
    problem = only_problem(path)
    assert (
        problem.path == "evaluations.detection_voc.archs[1]"
        and "unknown architecture 'r43'" in problem.message
        and "did you mean 'r34'" in problem.message
    )


# ---------------------------------------------------------------- methods: the registry and their own checks


@pytest.mark.parametrize(
    ("break_it", "fragment", "path", "expected"),
    [
        (
            lambda d: d["methods"].update(seedd={"kind": "distill", "head": "disco"}),
            "seedd:",
            "methods.seedd",
            "no method 'seedd' is implemented; expected one of: mocov2, simclr, disco",
        ),
        (
            lambda d: d["methods"]["rkd_disco"].update(kind="pretrain"),
            ("  rkd_disco:", "kind: pretrain"),
            "methods.rkd_disco.kind",
            "'rkd_disco' is a distill method (disco/methods/registry.py), not pretrain",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["seed_distill"].update(teacher_temperature=-1.0),
            "teacher_temperature: -1.0",
            "profiles.tiny-mocov2.seed_distill.teacher_temperature",
            "expected greater than 0, got -1.0",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["seed_distill"].update(teacher_bn="frozen"),
            "teacher_bn: frozen",
            "profiles.tiny-mocov2.seed_distill.teacher_bn",
            "expected one of: train, eval",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["rkd"].update(angle_wieght=2.0),
            "angle_wieght: 2.0",
            "profiles.tiny-mocov2.rkd.angle_wieght",
            "did you mean 'angle_weight'",
        ),
        (
            lambda d: d["profiles"]["tiny-mocov2"]["seed_distill"].update(queue_size=4000),
            ("  tiny-mocov2:", "queue_size: 4000"),
            "profiles.tiny-mocov2.seed_distill.queue_size",
            "queue_size 4000 must be a multiple of pretrain.batch_size 64",
        ),
        (
            lambda d: d.update(default_methods=["disco", "sed"]),
            "- sed",
            "default_methods[1]",
            "unknown method 'sed'",
        ),
        (  # once, at the base's section, though DisCo over SwAV reads it too
            lambda d: d["profiles"]["tiny-swav"]["swav"].update(nmb_crops=[2, 4]),
            ("  tiny-swav:", "    swav:"),
            "profiles.tiny-swav.swav",
            "method swav: nmb_crops, size_crops, min_scale_crops and max_scale_crops need one entry per kind of crop",
        ),
        (
            lambda d: d["paper_tables"]["swav_testbed"].update(base_method="swv"),
            "base_method: swv",
            "paper_tables.swav_testbed.base_method",
            "unknown pretraining method 'swv'",
        ),
        (
            lambda d: d["reference"]["testbeds"]["swav"]["pairs"].update({"r50swav-effb2": {"disco": {"top1": None}}}),
            "r50swav-effb2:",
            "reference.testbeds.swav.pairs.r50swav-effb2",
            "unknown pair 'r50swav-effb2'",
        ),
    ],
    ids=[
        "unregistered",
        "wrong-kind",
        "seed-temperature",
        "seed-teacher-bn",
        "rkd-typo",
        "seed-queue",
        "default",
        "swav-crops",
        "table-base",
        "testbed-pair",
    ],
)
def test_method_entries_and_sections_are_checked_with_file_and_line(data, tmp_path, break_it, fragment, path, expected):
    break_it(data)
    dumped, text = dump(data, tmp_path)
    problem = only_problem(dumped)
    assert (problem.line, problem.path) == (
        line_after(text, *fragment) if isinstance(fragment, tuple) else line_of(text, fragment),
        path,
    ), problem
    assert expected in problem.message, problem.message


def line_after(text: str, anchor: str, fragment: str) -> int:
    """The first line holding `fragment` after the one line that starts with `anchor`."""
    start = line_of(text, anchor)
    lines = text.splitlines()
    return next(number for number in range(start + 1, len(lines) + 1) if fragment in lines[number - 1])


def test_every_registered_method_is_in_the_real_matrix_with_its_kind():
    from disco.methods.registry import METHODS

    bench = validate_file(REAL_FILE).bench
    assert {name: method.kind for name, method in bench.methods.items()} == {
        name: spec.kind for name, spec in METHODS.items()
    }
    assert bench.default_methods == ["disco"]


def test_paper_sections_read_by_evaluations_name_students_and_entries(data, tmp_path):
    """reference.semi_supervised (read by semi_linear_*pct): a student per key, entries baseline,
    teacher or <method>_<teacher>; a typo would silently show n/a in the report."""
    semi = data["reference"]["semi_supervised"]
    semi["r81"] = semi.pop("r18")
    path, text = dump(data, tmp_path)
    problem = only_problem(path)
    assert (problem.line, problem.path) == (line_of(text, "r81:"), "reference.semi_supervised.r81")
    assert "unknown student 'r81'" in problem.message and problem.message.endswith("(did you mean 'r18'?)")
    semi["r18"] = semi.pop("r81")
    semi["r18"]["disco_r15"] = semi["r18"].pop("disco_r152")
    path, text = dump(data, tmp_path)
    problem = only_problem(path)
    assert (problem.line, problem.path) == (line_of(text, "disco_r15:"), "reference.semi_supervised.r18.disco_r15")
    assert problem.message.endswith("(did you mean 'disco_r152'?)")


# ---------------------------------------------------------------- a matrix that extends another

MINE = """# a researcher's own matrix: ours, plus a pair, with the tiny students trained longer
extends: default
pairs:
  r152-mbv3: {teacher: r152, student: mbv3}
profiles:
  tiny:
    pretrain: {epochs: 9}
"""


def test_a_matrix_that_extends_ours_adds_and_overrides_key_by_key(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text(MINE)
    ours, theirs = load_benchmarks(REAL_FILE), load_benchmarks(mine)
    assert set(theirs.pairs) == set(ours.pairs) | {"r152-mbv3"}
    assert theirs.profiles["tiny"].pretrain.epochs == 9  # overridden
    # the rest of the section kept
    kept = dataclasses.replace(theirs.profiles["tiny"].pretrain, epochs=ours.profiles["tiny"].pretrain.epochs)
    assert kept == ours.profiles["tiny"].pretrain
    assert theirs.profiles["paper"] == ours.profiles["paper"] and theirs.reference == ours.reference


def test_each_problem_of_an_extending_matrix_is_at_the_file_and_line_it_was_written(tmp_path):
    base_text = REAL_FILE.read_text().replace(
        "    evals: [linear, knn, semi_linear_1pct,", "    evals: [linear, knnn, semi_linear_1pct,", 1
    )
    assert base_text != REAL_FILE.read_text()
    (tmp_path / "base.yaml").write_text(base_text)
    mine = tmp_path / "mine.yaml"
    mine.write_text(MINE.replace("extends: default", "extends: base.yaml").replace("epochs: 9", "epochs: -9"))
    rendered = [problem.render(mine) for problem in validate_file(mine).problems]
    base_line = line_of(base_text, "evals: [linear, knnn, semi_linear_1pct,")
    assert rendered[0].startswith(f"{mine}:7: profiles.tiny.pretrain.epochs: ")  # the override, in mine
    assert (
        rendered[1].startswith(f"{tmp_path / 'base.yaml'}:{base_line}: profiles.")
        and "did you mean 'knn'" in rendered[1]
    )
    assert len(rendered) == 2, rendered


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"mine.yaml": "extends: nope.yaml\n"},
            "mine.yaml:1: extends: nope.yaml: no such file (looked at {tmp}/nope.yaml)",
        ),
        (
            {"mine.yaml": "extends: other.yaml\n", "other.yaml": "extends: mine.yaml\n"},
            "mine.yaml:1: extends: the files extend each other in a loop ({tmp}/mine.yaml -> {tmp}/other.yaml -> {tmp}/mine.yaml)",
        ),
        (
            {"mine.yaml": "extends: [default]\n"},
            "mine.yaml:1: extends: expected 'default' or the path of another matrix file",
        ),
        (
            {"mine.yaml": "extends: other.yaml\n", "other.yaml": "- a list\n"},
            "mine.yaml:1: extends: {tmp}/other.yaml is not a matrix file",
        ),
    ],
    ids=["missing", "loop", "not-a-path", "not-a-matrix"],
)
def test_an_extends_that_cannot_be_followed_is_one_line_and_exit_2(files, expected, tmp_path, monkeypatch, capsys):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "validate", "mine.yaml")
    assert code == 2 and err.splitlines()[0].startswith(expected.format(tmp=tmp_path)), err
