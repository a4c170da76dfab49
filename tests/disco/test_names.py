"""One 'did you mean' rule for every unknown name."""

from disco.names import did_you_mean, nearest


def test_a_typo_gets_the_nearest_name_and_an_unrelated_word_none():
    assert did_you_mean("r05", ["r50", "r101", "effb0"]) == " (did you mean 'r50'?)"
    assert did_you_mean("lienar", ("linear", "knn")) == " (did you mean 'linear'?)"
    assert nearest("transformer", ["r50", "knn"]) is None and did_you_mean("transformer", ["r50"]) == ""
    assert nearest(3, [1, 3]) == "3"  # YAML keys need not be strings


def test_every_caller_uses_the_one_rule():
    """No module other than disco/names.py matches names with difflib itself."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    users = [
        path.relative_to(root).as_posix()
        for folder in ("disco", "harness")
        for path in (root / folder).rglob("*.py")
        if "difflib" in path.read_text()
    ]
    assert users == ["disco/names.py"]
