"""disco is the library, harness the tool around it: disco never imports harness (its errors are
disco/errors.py's), so it can be used, tested and type-checked alone."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append((node.lineno, node.module))
    return modules


def test_disco_never_imports_harness():
    offending = [
        f"{path.relative_to(REPO)}:{line}: import {module}"
        for path in sorted((REPO / "disco").rglob("*.py"))
        for line, module in imported_modules(path)
        if module == "harness" or module.startswith("harness.")
    ]
    assert not offending, "disco/ must not import harness/:\n" + "\n".join(offending)


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from harness.errors import UserError\n    import harness.cli\n")
    assert imported_modules(module) == [(2, "harness.errors"), (3, "harness.cli")]
