"""A matrix file that extends another (`extends: default`, or a path relative to the file): a
researcher's own pairs, profiles or method settings on top of ours, without copying benchmarks.yaml.

The files form layers, the extending one first; their data merge key by key (a mapping in the
extending file adds to or overrides the one it extends, any other value replaces it), and every
problem `validate` finds is reported at the file and line where the offending entry was written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXTENDS = "extends"
DEFAULT = "default"  # `extends: default`: the benchmarks.yaml disco-bench ships
DEFAULT_MATRIX = Path(__file__).resolve().parents[1] / "benchmarks.yaml"
MAX_DEPTH = 8

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Layer:
    file: Path
    root: yaml.Node  # the composed node tree: where each entry was written
    data: dict[str, Any]  # without its `extends:` key


class ExtendsProblem(Exception):
    """An `extends:` that cannot be followed; `loc` is where it was written in the extending file."""

    def __init__(self, loc: Loc, message: str):
        super().__init__(message)
        self.loc = loc


def merged(base: Any, over: Any) -> Any:
    """`over` on top of `base`: mappings merge key by key, recursively; anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{key: merged(base[key], value) if key in base else value for key, value in over.items()}}
    return over


def merged_data(layers: list[Layer]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for layer in reversed(layers):  # the base first, the extending file last
        data = merged(data, layer.data)
    return data


def base_layers(target: Any, extending: Path, seen: tuple[Path, ...]) -> list[Layer]:
    """The layers `extends: <target>` of the file `extending` brings in, nearest first."""
    path = _resolve(target, extending)
    if path in seen or len(seen) >= MAX_DEPTH:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ExtendsProblem((EXTENDS,), f"the files extend each other in a loop ({chain}); remove one `extends:`")
    try:
        text = path.read_text()
        root, data = yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtendsProblem((EXTENDS,), f"cannot read {path} ({getattr(exc, 'strerror', None) or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ExtendsProblem((EXTENDS,), f"{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or root is None:
        raise ExtendsProblem((EXTENDS,), f"{path} is not a matrix file (a mapping of sections)")
    layer = Layer(path, root, {key: value for key, value in data.items() if key != EXTENDS})
    if EXTENDS not in data:
        return [layer]
    return [layer, *base_layers(data[EXTENDS], path, (*seen, path))]


def _resolve(target: Any, extending: Path) -> Path:
    if target == DEFAULT:
        if not DEFAULT_MATRIX.is_file():
            raise ExtendsProblem(
                (EXTENDS,), f"'default' is disco-bench's own benchmarks.yaml, not found at {DEFAULT_MATRIX}"
            )
        return DEFAULT_MATRIX
    if not isinstance(target, str) or not target.strip():
        raise ExtendsProblem((EXTENDS,), f"expected 'default' or the path of another matrix file, got {target!r}")
    path = (extending.parent / target).resolve()
    if not path.is_file():
        raise ExtendsProblem(
            (EXTENDS,), f"{target}: no such file (looked at {path}); use 'default' for disco-bench's own matrix"
        )
    return path


def depth_in(root: yaml.Node, loc: Loc) -> tuple[int, int]:
    """(how many parts of `loc` the node tree holds, the line of the deepest of them)."""
    node, line, depth = root, root.start_mark.line + 1, 0
    for part in loc:
        found = child(node, part)
        if found is None:
            break
        (line, node), depth = found, depth + 1
    return depth, line


def where(layers: list[Layer], loc: Loc) -> tuple[Path, int]:
    """The file and line of `loc`: the layer that holds most of it, the extending file on a tie."""
    best = max(range(len(layers)), key=lambda i: (depth_in(layers[i].root, loc)[0], -i))
    return layers[best].file, depth_in(layers[best].root, loc)[1]


def loc_of(dotted: str) -> Loc:
    """The inverse of validate.dotted(): 'profiles.tiny.evals[1]' -> ('profiles', 'tiny', 'evals', 1)."""
    return tuple(int(index) if index else key for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", dotted))


def child(node: yaml.Node | None, part: str | int) -> tuple[int, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key.start_mark.line + 1, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item.start_mark.line + 1, item
    return None
