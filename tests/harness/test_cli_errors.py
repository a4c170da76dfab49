import subprocess
import sys

import pytest

from tests.conftest import REPO, disco_bench


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_pair_lists_valid_names_with_did_you_mean(workspace_args):
    proc = disco_bench("run", "--pair", "r50-efb0", "--dry-run", *workspace_args)
    assert_one_line_error(proc, "unknown pair 'r50-efb0'", "did you mean 'r50-effb0'", "r152-r34")


def test_unknown_profile_lists_valid_names(workspace_args):
    proc = disco_bench("run", "--pair", "r50-effb0", "--profile", "tinny", "--dry-run", *workspace_args)
    assert_one_line_error(proc, "unknown profile 'tinny'", "did you mean 'tiny'", "paper")


def test_unwritable_output_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = disco_bench("run", "--pair", "r50-effb0", "--smoke", "--artifacts", str(blocker / "artifacts"), "--results", str(tmp_path / "results"))
    assert_one_line_error(proc, "not writable", str(blocker / "artifacts"))
    assert proc.returncode == 2


def test_missing_matrix_file_is_a_clear_error(tmp_path, workspace_args):
    proc = disco_bench("run", "--benchmarks", str(tmp_path / "nope.yaml"), "--dry-run", *workspace_args)
    assert_one_line_error(proc, "nope.yaml", "not found")


IMPORT_PROBE = """
import sys
from harness.cli import main
sys.argv = ["disco-bench", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("heavy:", sorted(name for name in ("torch", "timm", "torchvision") if name in sys.modules))
"""


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["validate"], ["list"]])
def test_help_validate_and_list_do_not_import_torch(args, workspace_args):
    extra = workspace_args if args == ["list"] else []
    proc = subprocess.run([sys.executable, "-c", IMPORT_PROBE, *args, *extra], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip().splitlines()[-1] == "heavy: []", proc.stderr[-2000:]
