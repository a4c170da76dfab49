"""Check benchmarks.yaml without a GPU and without stopping at the first error: the typed schema
(harness.config.Benchmarks), every cross-reference between sections, and the provenance of every
reference number. Each problem is one line, `FILE:LINE: KEY.PATH: what was expected`, with a
"did you mean" for misspelled names. Line numbers come from the YAML node tree."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard, Union, get_args, get_origin, get_type_hints

import yaml
from pydantic import BaseModel, ValidationError

from disco.archs import ARCHS
from disco.eval_recipes import recipe_problems
from disco.evals import EVALUATIONS
from disco.methods.registry import METHODS, SECTIONS
from disco.names import did_you_mean, nearest
from harness.config import Benchmarks, composition_problem, pretrain_methods, section_values
from harness.errors import UserError
from harness.extends import EXTENDS, ExtendsProblem, Layer, base_layers, depth_in, loc_of, merged_data, where

Loc = tuple[str | int, ...]
CONFIDENCES = ("high", "medium", "low")
DOCUMENT = "(document)"
MAX_LISTED_CHOICES = 12


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based
    path: str
    message: str
    file: str | None = None  # in a matrix that extends another (`extends:`): the file of this line

    def render(self, file: str | Path) -> str:
        return f"{self.file or file}:{self.line}: {self.path}: {self.message}"


@dataclass
class Outcome:
    problems: list[Problem]
    bench: Benchmarks | None  # set only when there is no problem at all

    def summary(self, file: str | Path) -> str:
        if self.bench is not None:
            b = self.bench
            return f"{file}: valid ({len(b.pairs)} pairs, {len(b.teachers)} teachers, {len(b.students)} students, {len(b.profiles)} profiles)"
        count = len(self.problems)
        return f"{file}: {count} error{'s' if count != 1 else ''}"


# ---------------------------------------------------------------- entry points


def validate_file(path: Path) -> Outcome:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(
            f"{path}: file not found; pass the matrix file (default: benchmarks.yaml in the repository root)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the file ({exc})") from None
    return validate_text(text, path)


def validate_text(text: str, source: Path = Path("benchmarks.yaml")) -> Outcome:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return Outcome([yaml_problem(exc)], None)
    if not isinstance(raw, dict):
        expected = "a mapping of the sections " + ", ".join(Benchmarks.model_fields)
        return Outcome([Problem(1, DOCUMENT, f"expected {expected}, got {type(raw).__name__}")], None)
    index: NodeIndex = NodeIndex(root)
    duplicates = duplicate_key_problems(root)
    if EXTENDS in raw:
        here = Layer(source, root, {key: value for key, value in raw.items() if key != EXTENDS})
        try:
            layers = [here, *base_layers(raw[EXTENDS], source, (source.resolve(),))]
        except ExtendsProblem as exc:
            return Outcome([Problem(index.line(exc.loc), dotted(exc.loc), str(exc))], None)
        raw, index = merged_data(layers), LayeredIndex(layers)
        duplicates = [
            dataclasses.replace(p, file=str(layer.file)) for layer in layers for p in duplicate_key_problems(layer.root)
        ]
    bench, schema, model_level = schema_problems(raw, index)
    problems = duplicates + schema + reference_problems(raw, index) + paper_section_problems(raw, index)
    problems += reference_number_problems(raw.get("reference"), index)
    problems += evaluation_problems(raw, index) + profile_problems(raw, index) + method_problems(raw, index)
    if bench is not None:
        problems += method_config_problems(bench, raw, index)
    if bench is None and not problems:
        problems = model_level  # a model-level check that reference_problems() does not mirror
    if isinstance(index, LayeredIndex):
        layered = [p if p.file else index.located(p) for p in problems]
        return Outcome(sorted(dict.fromkeys(layered), key=index.order), bench if not layered else None)
    problems = sorted(dict.fromkeys(problems), key=lambda p: p.line)
    return Outcome(problems, bench if not problems else None)


def yaml_problem(exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark else 1
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return Problem(line, DOCUMENT, f"not valid YAML: {what}")


# ---------------------------------------------------------------- names and positions


def hint(name: str, choices: list[str]) -> str:
    return did_you_mean(name, choices)


def choice_list(choices: list[str], where: str) -> str:
    if len(choices) > MAX_LISTED_CHOICES:
        return f"one of the {len(choices)} names under '{where}'"
    return (
        "one of: " + ", ".join(str(c) for c in choices)
        if choices
        else f"a name defined under '{where}' (there are none)"
    )


def dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or DOCUMENT


class NodeIndex:
    """Positions of data paths in the composed YAML node tree."""

    def __init__(self, root: yaml.Node | None):
        self.root = root

    def line(self, loc: Loc) -> int:
        """The line of the deepest node of `loc` that exists (a mapping entry: its key's line)."""
        return depth_in(self.root, loc)[1] if self.root else 1


class LayeredIndex(NodeIndex):
    """Positions in a matrix that extends others: each in the file where the entry was written."""

    def __init__(self, layers: list[Layer]):
        super().__init__(layers[0].root)
        self.layers = layers

    def line(self, loc: Loc) -> int:
        return where(self.layers, loc)[1]

    def located(self, problem: Problem) -> Problem:
        return dataclasses.replace(problem, file=str(where(self.layers, loc_of(problem.path))[0]))

    def order(self, problem: Problem) -> tuple[int, int]:
        files = [str(layer.file) for layer in self.layers]
        return (files.index(problem.file) if problem.file in files else 0), problem.line


def duplicate_key_problems(node: yaml.Node | None, loc: Loc = ()) -> list[Problem]:
    """safe_load keeps the last of two equal keys without a word: a duplicated pair would vanish."""
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name is not None and name != "<<" and name in first_line:
                message = f"duplicate key (first at line {first_line[name]}); the later value silently replaces the earlier one"
                problems.append(Problem(key.start_mark.line + 1, dotted(loc + (name,)), message))
            elif name is not None:
                first_line[name] = key.start_mark.line + 1
            problems += duplicate_key_problems(value, loc + ((name,) if name is not None else ()))
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            problems += duplicate_key_problems(item, loc + (position,))
    return problems


# ---------------------------------------------------------------- the typed schema


def schema_problems(raw: dict[str, Any], index: NodeIndex) -> tuple[Benchmarks | None, list[Problem], list[Problem]]:
    """(the model, field-level problems, model-level problems). The model-level cross-reference
    check stops at its first error; reference_problems() reports them all, so those come apart."""
    try:
        return Benchmarks.model_validate(raw), [], []
    except ValidationError as exc:
        errors = exc.errors()
    model_level = [
        Problem(1, DOCUMENT, str(error["msg"]).removeprefix("Value error, ")) for error in errors if not error["loc"]
    ]
    field_errors = [error for error in errors if error["loc"]]
    suggested = {
        (tuple(e["loc"][:-1]), nearest(str(e["loc"][-1]), fields_at(e["loc"][:-1])))
        for e in field_errors
        if e["type"] == "extra_forbidden"
    }
    problems = []
    for error in field_errors:
        loc = tuple(error["loc"])
        if error["type"] == "missing" and (loc[:-1], loc[-1]) in suggested:
            continue  # reported once, as the misspelled key with its "did you mean"
        problems.append(Problem(index.line(loc), dotted(loc), describe(error)))
    return None, problems, model_level


# pydantic models say extra_forbidden; the methods' config dataclasses, unexpected_keyword_argument
UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")


def describe(error: Mapping[str, Any]) -> str:
    loc, kind, value = tuple(error["loc"]), error["type"], error.get("input")
    if kind == "missing":
        return "required field missing"
    if kind in UNKNOWN_KEY:
        allowed = fields_at(loc[:-1])
        return f"unknown key; expected {choice_list(allowed, dotted(loc[:-1]))}{hint(str(loc[-1]), allowed)}"
    got = (
        f", got {value!r}"
        if isinstance(value, (str, int, float, bool)) or value is None
        else f", got a {type(value).__name__}"
    )
    if kind == "literal_error":
        choices = [str(choice) for choice in literal_choices(loc)]
        return f"expected one of: {', '.join(choices)}{got}{hint(str(value), choices)}"
    if kind == "value_error":  # a model's own check: its message already says what and how to fix
        return error["msg"].removeprefix("Value error, ")
    message = error["msg"].replace("Input should be ", "expected ", 1)
    return message[0].lower() + message[1:] + got


def annotation_at(loc: Loc) -> Any:
    annotation: Any = Benchmarks
    for part in loc:
        annotation = unwrap_optional(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field else None
        elif dataclasses.is_dataclass(annotation):
            annotation = get_type_hints(annotation).get(str(part))
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        else:
            return None
    return unwrap_optional(annotation)


def unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def fields_at(loc: Loc) -> list[str]:
    model = annotation_at(tuple(loc))
    if dataclasses.is_dataclass(model):
        return [field.name for field in dataclasses.fields(model)]
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def literal_choices(loc: Loc) -> list[Any]:
    annotation = annotation_at(loc)
    return list(get_args(annotation)) if get_origin(annotation) is Literal else []


# ---------------------------------------------------------------- cross-references


# (pattern, what it names, section it must exist in; None = disco.archs.ARCHS). In a pattern "*"
# is every key of a mapping, "[]" every item of a list; a trailing "<key>" checks the keys themselves.
REFERENCES: list[tuple[tuple[str, ...], str, str | None]] = [
    (("teachers", "*", "arch"), "architecture", None),
    (("students", "*", "arch"), "architecture", None),
    (("teachers", "*", "pretrain"), "pretraining method", "methods"),
    (("profiles", "*", "base_method"), "pretraining method", "methods"),
    (("pairs", "*", "teacher"), "teacher", "teachers"),
    (("pairs", "*", "student"), "student", "students"),
    (("pairs", "*", "evals", "[]"), "evaluation", "evaluations"),
    (("default_pairs", "[]"), "pair", "pairs"),
    (("default_methods", "[]"), "method", "methods"),
    (("profiles", "*", "evals", "[]"), "evaluation", "evaluations"),
    (("profiles", "*", "teacher_checkpoints", "<key>"), "teacher", "teachers"),
    (("evaluations", "*", "archs", "[]"), "architecture", None),
    (("paper_tables", "*", "evaluations", "[]"), "evaluation", "evaluations"),
    (("paper_tables", "*", "students", "[]"), "student", "students"),
    (("paper_tables", "*", "teachers", "[]"), "teacher", "teachers"),
    (("paper_tables", "*", "methods", "[]"), "method", "methods"),
    (("paper_tables", "*", "base_method"), "pretraining method", "methods"),
    (("reference", "testbeds", "<key>"), "pretraining method", "methods"),
    (("reference", "testbeds", "*", "teachers", "<key>"), "teacher", "teachers"),
    (("reference", "testbeds", "*", "baselines", "<key>"), "student", "students"),
    (("reference", "testbeds", "*", "pairs", "<key>"), "pair", "pairs"),
    (("reference", "teachers", "<key>"), "teacher", "teachers"),
    (("reference", "baselines", "<key>"), "student", "students"),
    (("reference", "pairs", "<key>"), "pair", "pairs"),
]


def matches(data: Any, pattern: tuple[str, ...], loc: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    if not pattern:
        yield loc, data
        return
    head, rest = pattern[0], pattern[1:]
    if head == "<key>" and isinstance(data, dict):
        yield from ((loc + (key,), key) for key in data)
    elif head == "*" and isinstance(data, dict):
        for key, value in data.items():
            yield from matches(value, rest, loc + (key,))
    elif head == "[]" and isinstance(data, list):
        for position, value in enumerate(data):
            yield from matches(value, rest, loc + (position,))
    elif isinstance(data, dict) and head in data:
        yield from matches(data[head], rest, loc + (head,))


def reference_problems(raw: dict[str, Any], index: NodeIndex) -> list[Problem]:
    problems = []
    for pattern, what, section in REFERENCES:
        if section is not None and not isinstance(raw.get(section), dict):
            continue  # the section itself is missing or malformed: reported once by the schema
        valid = list(ARCHS) if section is None else list(raw[section])
        where = "disco.archs.ARCHS" if section is None else section
        if section is not None and what == "pretraining method":  # of kind pretrain, implemented
            valid, where = pretrain_methods(raw[section]), f"{section} (kind pretrain, implemented)"
        for loc, value in matches(raw, pattern):
            if isinstance(value, str) and value not in valid:
                message = f"unknown {what} '{value}'; expected {choice_list(valid, where)}{hint(value, valid)}"
                problems.append(Problem(index.line(loc), dotted(loc), message))
    return problems


def paper_section_problems(raw: dict[str, Any], index: NodeIndex) -> list[Problem]:
    """The per-student sections of `reference:` that evaluations read (disco.evals.PaperNumbers): each
    key a student, each entry `baseline`, `teacher` or `<method>_<teacher>`; notes are free text."""
    reference, students = raw.get("reference"), raw.get("students")
    if not isinstance(reference, dict) or not isinstance(students, dict):
        return []
    methods, teachers = _mapping_items(raw.get("methods")), _mapping_items(raw.get("teachers"))
    names = [str(spec.get("reference") or name) for name, spec in methods if isinstance(spec, dict)]
    entries = ["baseline", "teacher"] + [f"{method}_{teacher}" for method in names for teacher, _ in teachers]
    sections = {ev.paper.section for ev in EVALUATIONS.values() if ev.paper and ev.paper.section}
    problems = []
    for section in sorted(sections & set(reference)):
        for student, found in _mapping_items(reference[section]):
            loc: Loc = ("reference", section, student)
            if str(student).endswith("note"):
                continue
            if student not in students:
                message = f"unknown student '{student}'; expected {choice_list(list(students), 'students')}{hint(str(student), list(students))}"
                problems.append(Problem(index.line(loc), dotted(loc), message))
                continue
            for entry, _ in _mapping_items(found):
                if entry not in entries:
                    message = f"unknown entry '{entry}'; expected baseline, teacher or <method>_<teacher> (e.g. disco_r50){hint(str(entry), entries)}"
                    problems.append(Problem(index.line(loc + (entry,)), dotted(loc + (entry,)), message))
    return problems


def _mapping_items(data: Any) -> list[tuple[Any, Any]]:
    return list(data.items()) if isinstance(data, dict) else []


# ---------------------------------------------------------------- what a run would refuse at run time


def method_problems(raw: dict[str, Any], index: NodeIndex) -> list[Problem]:
    """Every `methods:` entry is registered with its kind (disco/methods/registry.py), and in every
    profile its config, built from the sections it reads, passes the method's own checks."""
    methods = raw.get("methods")
    if not isinstance(methods, dict):
        return []
    problems = []
    for name, entry in methods.items():
        loc: Loc = ("methods", name)
        if name not in METHODS:
            valid = list(METHODS)
            message = f"no method '{name}' is implemented; expected {choice_list(valid, 'disco/methods/registry.py METHODS')}{hint(str(name), valid)}"
            problems.append(Problem(index.line(loc), dotted(loc), message))
        elif isinstance(entry, dict) and entry.get("kind") not in (None, METHODS[name].kind):
            where = loc + ("kind",)
            message = f"'{name}' is a {METHODS[name].kind} method (disco/methods/registry.py), not {entry.get('kind')}"
            problems.append(Problem(index.line(where), dotted(where), message))
    return problems


def method_config_problems(bench: Benchmarks, raw: dict[str, Any], index: NodeIndex) -> list[Problem]:
    """Each method's own `validate(batch_size)` on the config its sections give, in every profile;
    reported at the last section it reads, once per section and once per profile (a composition
    repeats its base method's complaint). Runs on a schema-valid file."""
    problems: list[Problem] = []
    for profile_name, profile in bench.profiles.items():
        # queue/batch/group problems are reported by batch_problems, more precisely
        if batch_problems(raw["profiles"][profile_name], ("profiles", profile_name), index):
            continue
        reported: set[str] = set()
        for name in bench.methods:
            spec = METHODS[name]
            if spec.kind == "pretrain" and name != profile.base_method:
                continue  # a profile pretrains with its base method only
            if composition_problem(name, profile.base_method):
                continue  # a run over this base refuses the method with one line; nothing to check
            spec = spec.on_base(profile.base_method)
            config = spec.build_config(spec.resolve({s: section_values(profile, s) for s in spec.sections}))
            where = ("profiles", profile_name, spec.sections[-1])
            try:
                config.validate(profile.pretrain.batch_size)
            except ValueError as exc:
                if str(exc) not in reported and all(problem.path != dotted(where) for problem in problems):
                    problems.append(Problem(index.line(where), dotted(where), f"method {name}: {exc}"))
                reported.add(str(exc))
    return problems


def evaluation_problems(raw: dict[str, Any], index: NodeIndex) -> list[Problem]:
    """Every evaluation named under `evaluations:` is implemented (the registry in disco/evals/__init__.py)."""
    names = raw.get("evaluations")
    if not isinstance(names, dict):
        return []
    implemented = list(EVALUATIONS)
    return [
        Problem(
            index.line(("evaluations", name)),
            f"evaluations.{name}",
            f"no evaluation '{name}' is implemented; expected {choice_list(implemented, 'disco.evals')}{hint(str(name), implemented)}",
        )
        for name in names
        if name not in EVALUATIONS
    ]


def profile_problems(raw: dict[str, Any], index: NodeIndex) -> list[Problem]:
    profiles = raw.get("profiles")
    if not isinstance(profiles, dict):
        return []
    problems = []
    for name, profile in profiles.items():
        if isinstance(profile, dict):
            problems += batch_problems(profile, ("profiles", name), index) + eval_recipe_problems(
                profile, ("profiles", name), index
            )
    return problems + base_method_problems(raw, index)


def base_method_problems(raw: dict[str, Any], index: NodeIndex) -> list[Problem]:
    """A profile states the sections its base method reads, and every default distillation method
    composes with it (disco/methods/registry.py `base`/`variants`)."""
    profiles, defaults = raw.get("profiles"), raw.get("default_methods")
    problems = []
    for name, profile in (profiles or {}).items() if isinstance(profiles, dict) else []:
        base = profile.get("base_method") if isinstance(profile, dict) else None
        if not (isinstance(base, str) and base in METHODS and METHODS[base].kind == "pretrain"):
            continue  # missing or unknown: the schema and the cross-references say so
        where: Loc = ("profiles", name, "base_method")
        for section in METHODS[base].sections:
            if section not in profile:
                message = f"the base method {base} reads `{section}:`; add profiles.{name}.{section} with its values"
                problems.append(Problem(index.line(where), dotted(where), message))
        for position, method in enumerate(defaults if isinstance(defaults, list) else []):
            reason = composition_problem(method, base) if method in METHODS else None
            if reason:
                at: Loc = ("default_methods", position)
                message = f"{reason} (profiles.{name}.base_method); remove it from the defaults or run it with --methods on a profile it composes with"
                problems.append(Problem(index.line(at), dotted(at), message))
    return problems


def _positive_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def batch_problems(profile: dict[str, Any], loc: Loc, index: NodeIndex) -> list[Problem]:
    """In every method section with a queue (MoCo's keys, SEED's teacher embeddings), the queue takes
    whole batches, and a batch splits into whole BN groups."""
    pretrain = profile.get("pretrain")
    batch = pretrain.get("batch_size") if isinstance(pretrain, dict) else None
    if not _positive_int(batch):
        return []  # missing or mistyped: the schema says so
    problems = []
    for name, section in profile.items():
        if name not in SECTIONS or not isinstance(section, dict):
            continue
        queue, group = section.get("queue_size"), section.get("bn_group_size")
        if _positive_int(queue) and queue % batch:
            where = loc + (name, "queue_size")
            message = f"queue_size {queue} must be a multiple of pretrain.batch_size {batch} (the queue takes whole batches); e.g. {max(1, round(queue / batch)) * batch}"
            problems.append(Problem(index.line(where), dotted(where), message))
        if _positive_int(group) and batch > group and batch % group:
            where = loc + (name, "bn_group_size")
            message = f"pretrain.batch_size {batch} must split into whole BN groups of bn_group_size {group}; choose a divisor of {batch}"
            problems.append(Problem(index.line(where), dotted(where), message))
    return problems


def eval_recipe_problems(profile: dict[str, Any], loc: Loc, index: NodeIndex) -> list[Problem]:
    """Each evaluation recipe as its evaluation will read it, and a recipe for every evaluation the profile runs."""
    recipes = profile.get("eval_recipes") or {}
    if not isinstance(recipes, dict):
        return []
    problems = []
    for evaluation, recipe in recipes.items():
        where = loc + ("eval_recipes", evaluation)
        problems += [
            Problem(
                index.line(where + ((field,) if field else ())), dotted(where + ((field,) if field else ())), message
            )
            for field, message in recipe_entry_problems(str(evaluation), recipe)
        ]
    evals = profile.get("evals")
    for position, evaluation in enumerate(evals if isinstance(evals, list) else []):
        if (
            isinstance(evaluation, str)
            and evaluation != "linear"
            and evaluation in EVALUATIONS
            and evaluation not in recipes
        ):
            where = loc + ("evals", position)
            message = f"'{evaluation}' has no recipe; add one under {dotted(loc + ('eval_recipes',))}"
            problems.append(Problem(index.line(where), dotted(where), message))
    return problems


def recipe_entry_problems(evaluation: str, recipe: Any) -> list[tuple[str | None, str]]:
    """(field or None, message) for one `eval_recipes` entry, checked against its evaluation's recipe dataclass."""
    if evaluation not in EVALUATIONS:
        implemented = list(EVALUATIONS)
        return [
            (
                None,
                f"no evaluation '{evaluation}' is implemented{hint(evaluation, implemented)}; a recipe needs one of {choice_list(implemented, 'disco.evals')}",
            )
        ]
    return recipe_problems(EVALUATIONS[evaluation].recipe, recipe)


# ---------------------------------------------------------------- reference numbers


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def reference_number_problems(reference: Any, index: NodeIndex) -> list[Problem]:
    """Every non-null number carries a known `source` and a `confidence`; `gain_source` and
    `gain_confidence` cover the `gain_*` numbers of the same mapping. Nulls need nothing."""
    if not isinstance(reference, dict):
        return []
    sources = reference.get("sources")
    source_names = [str(name) for name in sources] if isinstance(sources, dict) else []
    problems = []
    if sources is not None and not isinstance(sources, dict):
        problems.append(
            Problem(
                index.line(("reference", "sources")),
                "reference.sources",
                "expected a mapping of source name -> description",
            )
        )
    for key, value in reference.items():
        if key != "sources":
            problems += provenance_problems(value, ("reference", key), source_names, index)
    return problems


def provenance_problems(data: Any, loc: Loc, source_names: list[str], index: NodeIndex) -> list[Problem]:
    if isinstance(data, list):
        return [
            p
            for position, item in enumerate(data)
            for p in provenance_problems(item, loc + (position,), source_names, index)
        ]
    if not isinstance(data, dict):
        return []
    problems = tag_problems(data, loc, source_names, index)
    prefixes = sorted(
        {str(k)[: -len("source")] for k in data if str(k).endswith("source")} | {""}, key=len, reverse=True
    )
    uncovered: dict[str, list[str]] = {}
    for key, value in data.items():
        if is_number(value):
            prefix = next(p for p in prefixes if str(key).startswith(p))
            for tag in ("source", "confidence"):
                if prefix + tag not in data:
                    uncovered.setdefault(prefix + tag, []).append(str(key))
        problems += provenance_problems(value, loc + (key,), source_names, index)
    for tag, keys in uncovered.items():
        expected = (
            choice_list(source_names, "reference.sources")
            if tag.endswith("source")
            else "one of: " + ", ".join(CONFIDENCES)
        )
        numbers = ", ".join(f"{key} = {data[key]}" for key in keys)
        message = f"{numbers} needs a '{tag}' next to it: {expected}"
        problems.append(Problem(index.line(loc + (keys[0],)), dotted(loc + (keys[0],)), message))
    return problems


def tag_problems(data: dict[Any, Any], loc: Loc, source_names: list[str], index: NodeIndex) -> list[Problem]:
    problems = []
    for key, value in data.items():
        name = str(key)
        if name.endswith("source") and value not in source_names:
            message = f"unknown source {value!r}; expected {choice_list(source_names, 'reference.sources')}{hint(str(value), source_names)}"
            problems.append(Problem(index.line(loc + (key,)), dotted(loc + (key,)), message))
        if name.endswith("confidence") and value not in CONFIDENCES:
            message = f"expected one of: {', '.join(CONFIDENCES)}, got {value!r}{hint(str(value), list(CONFIDENCES))}"
            problems.append(Problem(index.line(loc + (key,)), dotted(loc + (key,)), message))
    return problems
