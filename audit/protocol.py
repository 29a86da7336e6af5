"""Protocol files (`protocols/*.toml`): what to verify, validated into a typed `Protocol`.

A protocol names the paper, the dataset, a base model and training configuration, arms (named
overrides of the base, which may extend one another), frameworks, seeds, which reading its claims
use (final-step or best-of-evaluations accuracy), the claims, the figures others published with
their sources, the differences between the paper and the official code with the arm or claim
that tests each, and a `smoke` size for a quick check. The format is versioned (PROTOCOL_VERSION)
and documented by example in `protocols/default.toml`; every key is listed in the tables below
(TOP, PAPER, DATA, ARM, SOURCE, PUBLISHED, DIFFERENCE, SMOKE, SEQUENTIAL, CLAIM_COMMON,
CLAIM_KIND).

Validation collects every error before it reports (file, key path, bad value, what is allowed,
"did you mean" for misspelled keys); `load` raises ProtocolError with all of them. Each arm, after
`extends`, is checked against the dataset it trains on: its class count against the count the
dataset's reader knows (a preset's default of 200 left in place on Cars is an error, not a
200-way head), and, when the official code runs it, its input size against the crop that code
hard-codes for the dataset (our transforms follow the model's input size). The dataset folder
itself is checked when it is known, at `audit plan`/`run` time (audit/plan.py).
Accuracies in protocols are percentages (as papers print them); tolerances and margins are
percentage points.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import tomllib
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfg.config import ModelConfig, tiny, vit_b16
from transfg.spec import FRAMEWORKS, PART_LAYER_INITS, SEED_AXES, TrainConfig

PROTOCOL_VERSION = 1
CLAIM_KINDS = ("value", "comparison", "equivalence", "ranking")
READINGS = ("final", "best")
PUBLISHED_READINGS = ("final", "best", "unknown")
SOURCE_KINDS = ("paper", "reproduction", "issue", "other")
MODEL_PRESETS = {"vit_b16": vit_b16, "tiny": tiny}
MAX_SEED = 2**32 - 1


class ProtocolError(ValueError):
    """Every problem found in one or more protocol files, one per line."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Source:
    kind: str  # paper, reproduction, issue, other
    citation: str
    url: str | None = None
    quote: str | None = None  # the context the figure was read from, quoted


@dataclass(frozen=True)
class Published:
    id: str
    value: float  # percent
    source: Source
    setting: str
    arm: str | None = None  # the arm of ours it corresponds to
    reading: str = "unknown"  # final, best (of test evaluations) or unknown
    test_images: int | None = None  # for its Wilson interval; default: the dataset's test count
    framework: str | None = None  # the implementation that produced it, in words


@dataclass(frozen=True)
class Claim:
    id: str
    kind: str
    text: str  # the claim as a sentence
    arm: str | None = None  # value, equivalence
    paper: float | None = None  # value: the figure claimed (percent)
    tolerance: float | None = None  # value: points either side that still count as reproduced
    source: str | None = None  # value: the id of the published figure it comes from
    better: str | None = None  # comparison: this arm beats `worse`
    worse: str | None = None
    margin: float | None = None  # comparison: by at least; equivalence: within (points)
    arms: tuple[str, ...] = ()  # ranking: the arms compared
    best: str | None = None  # ranking: the arm claimed best
    frameworks: tuple[str, ...] = ()  # which of our frameworks the claim is tested on
    reading: str | None = None  # overrides the protocol's reading


@dataclass(frozen=True)
class Difference:
    """Where the paper and the official code disagree, and what in the protocol tests it."""

    name: str
    text: str
    arm: str | None = None  # the arm that tests it (runs the other side of the difference)
    claim: str | None = None  # the claim that tests it

    @property
    def tested(self) -> bool:
        return self.arm is not None or self.claim is not None


@dataclass(frozen=True)
class Arm:
    name: str
    model: ModelConfig
    train: TrainConfig
    part_layer_init: str = "random"
    description: str = ""


@dataclass(frozen=True)
class Smoke:
    steps: int = 10
    train: int = 64  # training images kept
    test: int = 64


@dataclass(frozen=True)
class Protocol:
    path: Path
    name: str
    title: str
    paper: dict[str, Any]
    dataset: str
    data_root: str | None  # "bundled", a path, or None (the user gives --data-root)
    weights: str | None  # the pretrained file the protocol expects, or None (random init)
    arms: dict[str, Arm]
    frameworks: tuple[str, ...]
    seeds: dict[str, tuple[int, ...]]  # {"seed": (...)} or one entry per SEED_AXES axis
    reading: str
    claims: tuple[Claim, ...]
    published: tuple[Published, ...]
    smoke: Smoke
    devices: int = 1
    version: int = PROTOCOL_VERSION
    description: str = ""
    # the seed-to-seed SD (points) to plan with before 2 seeds of a group have finished; None:
    # the pooled spread of the protocol's other groups, or the audit's default (audit.verdict)
    seed_sd: float | None = None
    # `audit run --until-decided`: the group-sequential design (audit/sequential.py): spending,
    # and stages (cumulative seeds per group) or first, step and max_seeds; None: the defaults
    sequential: dict[str, Any] | None = None
    # where the paper and the official code disagree, and which arm or claim tests each
    differences: tuple[Difference, ...] = ()

    @property
    def seed_axes(self) -> tuple[str, ...]:
        return tuple(self.seeds)


# ----------------------------------------------------------------------------------- schema
# Each table's keys: name -> (checker, required). A checker returns an error ("allowed: ...")
# or None.

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, int | float) and not isinstance(v, bool)


def _string(v):
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def _positive_int(v):
    return None if _is_int(v) and v > 0 else "a positive integer"


def _percent(v):
    return None if _is_number(v) and 0 <= v <= 100 else "a percentage between 0 and 100"


def _points(v):
    return None if _is_number(v) and 0 < v <= 100 else "a number of percentage points > 0"


def _seed_sd(v):
    ok = _is_number(v) and 0 < v <= 50  # accuracies in [0, 100] cannot spread more than 50
    return None if ok else "a seed-to-seed standard deviation in percentage points, > 0 and <= 50"


def _margin(v):
    return None if _is_number(v) and 0 <= v <= 100 else "a number of percentage points >= 0"


def _one_of(options):
    def check(v):
        return None if v in options else f"one of {', '.join(map(str, options))}"
    return check


def _string_list(v):
    ok = isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)
    return None if ok else "a non-empty list of strings"


def _table(v):
    return None if isinstance(v, dict) else "a table"


def _any(v):
    return None


TOP = {
    "version": (_one_of((PROTOCOL_VERSION,)), True),
    "name": (_string, True),
    "title": (_string, True),
    "description": (_string, False),
    "paper": (_table, True),
    "data": (_table, True),
    "model": (_table, False),
    "train": (_table, False),
    "arms": (_table, True),
    "frameworks": (_string_list, True),
    "seeds": (_any, True),
    "reading": (_one_of(READINGS), False),
    "seed_sd": (_seed_sd, False),
    "devices": (_positive_int, False),
    "claims": (_any, False),
    "published": (_any, False),
    "smoke": (_table, False),
    "sequential": (_table, False),
    "differences": (_any, False),
}
PAPER = {"title": (_string, True), "authors": (_string_list, False), "venue": (_string, False),
         "year": (_positive_int, False), "url": (_string, False), "citation": (_string, False)}
DATA = {"dataset": (_string, True), "root": (_string, False), "weights": (_string, False)}
ARM = {"extends": (_string, False), "description": (_string, False), "model": (_table, False),
       "train": (_table, False), "part_layer_init": (_one_of(PART_LAYER_INITS), False)}
SOURCE = {"kind": (_one_of(SOURCE_KINDS), True), "citation": (_string, True),
          "url": (_string, False), "quote": (_string, False)}
PUBLISHED = {"id": (_string, True), "value": (_percent, True), "source": (_table, True),
             "setting": (_string, True), "arm": (_string, False),
             "reading": (_one_of(PUBLISHED_READINGS), False),
             "test_images": (_positive_int, False), "framework": (_string, False)}
DIFFERENCE = {"name": (_string, True), "text": (_string, True), "arm": (_string, False),
              "claim": (_string, False)}
SPENDING = ("obrien-fleming", "pocock")  # audit.sequential.SPENDING


def _stages(v):
    ok = isinstance(v, list) and v and all(_is_int(x) and x >= 2 for x in v) and \
        all(b > a for a, b in itertools.pairwise(v))
    return None if ok else "an increasing list of seed counts, the first at least 2"


def _at_least_two(v):
    return None if _is_int(v) and v >= 2 else "an integer >= 2"


SEQUENTIAL = {"spending": (_one_of(SPENDING), False), "stages": (_stages, False),
              "first": (_at_least_two, False), "step": (_positive_int, False),
              "max_seeds": (_at_least_two, False)}
SMOKE = {"steps": (_positive_int, False), "train": (_positive_int, False),
         "test": (_positive_int, False)}
CLAIM_COMMON = {"id": (_string, True), "kind": (_one_of(CLAIM_KINDS), True),
                "text": (_string, True), "frameworks": (_string_list, False),
                "reading": (_one_of(READINGS), False)}
CLAIM_KIND = {
    "value": {"arm": (_string, True), "paper": (_percent, True), "tolerance": (_points, True),
              "source": (_string, True)},
    "comparison": {"better": (_string, True), "worse": (_string, True),
                   "margin": (_margin, False), "source": (_string, False)},
    "equivalence": {"arm": (_string, True), "margin": (_points, True)},
    "ranking": {"arms": (_string_list, True), "best": (_string, True),
                "source": (_string, False)},
}


class Errors:
    def __init__(self, file: str):
        self.file = file
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{self.file}: {path}: {message}")

    def bad(self, path: str, value: Any, allowed: str) -> None:
        self.add(path, f"{value!r} is not allowed; allowed: {allowed}")


def _show(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """"; did you mean 'x'?" with the closest of `options`, or "" when none is close."""
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_arm(errors: Errors, path: str, name: str, arms: Iterable[str]) -> bool:
    """Whether `name` is an arm; if not, the error names it, the closest arm and every arm."""
    arms = list(arms)
    if name in arms:
        return True
    errors.add(path, f"{name!r} is not an arm{did_you_mean(name, arms)}; arms: {', '.join(arms)}")
    return False


def check_table(errors: Errors, path: str, table: dict, schema: dict) -> dict:
    """Unknown keys (with suggestions), missing required keys, bad values; returns the keys that
    passed."""
    good = {}
    for key, value in table.items():
        if key not in schema:
            errors.add(_show(path, key),
                       f"unknown key{did_you_mean(key, schema)}; allowed: {', '.join(schema)}")
            continue
        problem = schema[key][0](value)
        if problem:
            errors.bad(_show(path, key), value, problem)
        else:
            good[key] = value
    for key, (_, required) in schema.items():
        if required and key not in table:
            errors.add(_show(path, key), "missing (required)")
    return good


def _field_types(kind) -> dict[str, Any]:
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in dataclasses.fields(kind)}


def _type_problem(value: Any, hint: Any) -> str | None:
    """Whether a TOML value fits a dataclass field's annotation (int, float, bool, str, Literal,
    optional)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return None if value in args else f"one of {', '.join(map(repr, args))}"
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        options = [a for a in args if a is not type(None)]
        problems = [_type_problem(value, a) for a in options]
        return None if any(p is None for p in problems) else " or ".join(filter(None, problems))
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        return None if _is_int(value) else "an integer"
    if hint is float:
        return None if _is_number(value) else "a number"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    return None


def check_overrides(errors: Errors, path: str, table: dict, kind, skip=()) -> dict:
    """Keys of a [model] or [train] table against ModelConfig or TrainConfig."""
    types = {k: v for k, v in _field_types(kind).items() if k not in skip}
    good = {}
    for key, value in table.items():
        if key not in types:
            errors.add(_show(path, key),
                       f"unknown key{did_you_mean(key, types)}; allowed: {', '.join(types)}")
            continue
        problem = _type_problem(value, types[key])
        if problem:
            errors.bad(_show(path, key), value, problem)
        else:
            good[key] = value
    return good


# ----------------------------------------------------------------------------------- loading

def _parse_seeds(errors: Errors, value: Any) -> dict[str, tuple[int, ...]]:
    def seed_list(path, items):
        if not isinstance(items, list) or not items:
            errors.bad(path, items, "a non-empty list of seeds (integers 0 .. 2^32-1)")
            return ()
        bad = [s for s in items if not _is_int(s) or not 0 <= s <= MAX_SEED]
        if bad:
            errors.bad(path, bad[0], "seeds are integers 0 .. 2^32-1")
            return ()
        if len(set(items)) != len(items):
            errors.add(path, f"{items!r} repeats a seed; each seed once")
            return ()
        return tuple(items)

    if isinstance(value, list):
        return {"seed": seed_list("seeds", value)}
    if not isinstance(value, dict):
        errors.bad("seeds", value, "a list of seeds, {count = N, start = S}, or one list per "
                   f"axis ({', '.join(SEED_AXES)})")
        return {}
    if "count" in value or "start" in value:
        good = check_table(errors, "seeds", value,
                           {"count": (_positive_int, True),
                            "start": (lambda v: None if _is_int(v) and 0 <= v <= MAX_SEED
                                      else "an integer 0 .. 2^32-1", False)})
        if "count" in good:
            start = good.get("start", 0)
            return {"seed": tuple(range(start, start + good["count"]))}
        return {}
    schema = {axis: (_any, False) for axis in SEED_AXES}
    good = check_table(errors, "seeds", value, schema)
    if not value:
        errors.add("seeds", "empty; give a list of seeds or one list per axis")
    return {axis: seed_list(f"seeds.{axis}", items) for axis, items in good.items()}


def _arm_tables(errors: Errors, arms_table: dict) -> dict[str, dict]:
    """Each [arms.NAME] table checked against ARM (an unquoted dotted name gets a hint)."""
    raw = {}
    for name, table in arms_table.items():
        nested = [key for key, value in table.items() if isinstance(value, dict)
                  and key not in ARM and set(value) <= set(ARM)] \
            if isinstance(table, dict) else []
        if nested:
            errors.add(f"arms.{name}.{nested[0]}", f"an arm name with a dot must be quoted: "
                       f'[arms."{name}.{nested[0]}"]')
            continue
        if not isinstance(table, dict):
            errors.bad(f"arms.{name}", table, "a table of overrides (model, train, extends...)")
            continue
        raw[name] = check_table(errors, f"arms.{name}", table, ARM)
    return raw


def _lineage(errors: Errors, raw: dict[str, dict], name: str,
             seen: tuple[str, ...] = ()) -> list[str] | None:
    """The arm's `extends` chain, root first; None (with the error) for a cycle or a parent
    that is not an arm."""
    if name in seen:
        errors.add(f"arms.{name}.extends", f"cycle: {' -> '.join([*seen, name])}")
        return None
    parent = raw[name].get("extends")
    if parent is None:
        return [name]
    if not check_arm(errors, f"arms.{name}.extends", parent, raw):
        return None
    above = _lineage(errors, raw, parent, (*seen, name))
    return None if above is None else [*above, name]


def _build_arm(errors: Errors, name: str, lineage: list[str], raw: dict[str, dict],
               base_model: dict, base_train: dict, origins: dict[str, dict[str, str]] | None
               ) -> Arm | None:
    """One arm: the base, then each ancestor's overrides in order (its own last)."""
    model, train, part_layer_init = dict(base_model), dict(base_train), "random"
    origin = {key: f"model.{key}" for key in base_model}
    for ancestor in lineage:
        table = raw[ancestor]
        overrides = check_overrides(Errors("_"), "", table.get("model", {}), ModelConfig)
        model |= overrides
        origin |= {key: f"arms.{ancestor}.model.{key}" for key in overrides}
        train |= check_overrides(Errors("_"), "", table.get("train", {}), TrainConfig)
        part_layer_init = table.get("part_layer_init", part_layer_init)
    check_overrides(errors, f"arms.{name}.model", raw[name].get("model", {}), ModelConfig)
    check_overrides(errors, f"arms.{name}.train", raw[name].get("train", {}), TrainConfig)
    preset = model.pop("preset", "vit_b16")
    try:
        config = MODEL_PRESETS[preset](**model)
    except (ValueError, TypeError) as error:
        errors.add(f"arms.{name}.model", str(error))
        return None
    train_config = TrainConfig(**train)
    for problem in train_config.errors():
        errors.add(f"arms.{name}", problem)
    if origins is not None:
        origins[name] = origin | {"preset": preset}
    return Arm(name, config, train_config, part_layer_init, raw[name].get("description", ""))


def _resolve_arms(errors: Errors, arms_table: dict, base_model: dict, base_train: dict,
                  origins: dict[str, dict[str, str]] | None = None) -> dict[str, Arm]:
    """The arms with `extends` resolved. `origins` receives, per arm, the key path that set each
    of its model fields (`model.num_classes`, `arms.NAME.model.num_classes`); fields left at the
    preset's default have none."""
    raw = _arm_tables(errors, arms_table)
    arms = {}
    for name in raw:
        lineage = _lineage(errors, raw, name)
        arm = None if lineage is None else _build_arm(errors, name, lineage, raw, base_model,
                                                      base_train, origins)
        if arm is not None:
            arms[name] = arm
    return arms


def _check_against_dataset(errors: Errors, dataset: str, arms: dict[str, Arm],
                           origins: dict[str, dict[str, str]], frameworks: tuple[str, ...]
                           ) -> None:
    """Each arm's model (after `extends`) against the dataset it trains on: the class count the
    dataset's reader knows (transfg.data.readers.DATASETS), and, when the official code runs it,
    the input size of the transforms that code hard-codes for the dataset. One error per key
    that sets a wrong value (or per preset default left in place), naming both values."""
    from transfg.data.readers import dataset_spec

    spec = dataset_spec(dataset)
    wanted = {"num_classes": (spec.num_classes, f"the dataset {dataset!r} ({spec.title}) has "
                                                f"{spec.num_classes} classes")}
    if "official" in frameworks:
        wanted["image_size"] = (spec.crop, f"the official code's transforms for {dataset!r} "
                                           f"(hard-coded whatever --img_size says) resize to "
                                           f"{spec.resize} and crop {spec.crop}")
    found: dict[tuple[str, str], list[str]] = {}
    values: dict[tuple[str, str], Any] = {}
    for name, arm in arms.items():
        for key, (expected, _) in wanted.items():
            value = getattr(arm.model, key)
            if value != expected:
                where = origins.get(name, {}).get(key) or f"default:{origins[name]['preset']}"
                found.setdefault((key, where), []).append(name)
                values[key, where] = value
    for (key, where), names in found.items():
        expected, why = wanted[key]
        value = values[key, where]
        arms_note = "" if where.startswith(f"arms.{names[0]}.") and len(names) == 1 else \
            f" (arms: {', '.join(names)})"
        if where.startswith("default:"):
            preset = where.removeprefix("default:")
            errors.add(f"model.{key}", f"absent, so the {preset} preset's default {value} "
                       f"applies{arms_note}; {why}: set model.{key} = {expected}")
        else:
            errors.add(where, f"{value} does not match: {why}{arms_note}; allowed: {expected}")


def _parse_published(errors: Errors, items: Any, arms) -> tuple[Published, ...]:
    if items is None:
        return ()
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        errors.bad("published", items, "an array of tables ([[published]])")
        return ()
    result, ids = [], set()
    for i, item in enumerate(items):
        path = f"published[{i}]"
        good = check_table(errors, path, item, PUBLISHED)
        source = None
        if "source" in good:
            source_good = check_table(errors, f"{path}.source", good["source"], SOURCE)
            if not {"kind", "citation"} - set(source_good):
                source = Source(**source_good)
        if good.get("arm") is not None:
            check_arm(errors, f"{path}.arm", good["arm"], arms)
        if "id" in good:
            if good["id"] in ids:
                errors.add(f"{path}.id", f"{good['id']!r} is used twice; ids are unique")
            ids.add(good["id"])
        if source is not None and not {"id", "value", "setting"} - set(good):
            result.append(Published(**(good | {"source": source})))
    return tuple(result)


def _ranking_ok(errors: Errors, path: str, good: dict, frameworks, figures) -> bool:
    ok = True
    if "best" in good and "arms" in good and good["best"] not in good["arms"]:
        errors.add(f"{path}.best", f"{good['best']!r} is not among the ranked arms "
                   f"{good['arms']}")
        ok = False
    if len(good.get("arms", [])) < 2:
        errors.add(f"{path}.arms", "a ranking needs at least 2 arms")
        ok = False
    return ok


def _comparison_ok(errors: Errors, path: str, good: dict, frameworks, figures) -> bool:
    if good.get("better") == good.get("worse") is not None:
        errors.add(f"{path}.worse", "compares an arm with itself")
        return False
    return True


def _equivalence_ok(errors: Errors, path: str, good: dict, frameworks, figures) -> bool:
    if len(good.get("frameworks", frameworks)) < 2:
        errors.add(f"{path}.frameworks", "an equivalence between frameworks needs at least 2 "
                   "frameworks")
        return False
    return True


def _value_ok(errors: Errors, path: str, good: dict, frameworks, figures) -> bool:
    source, paper = good.get("source"), good.get("paper")
    if source in figures and paper is not None and abs(figures[source] - paper) > 1e-9:
        errors.add(f"{path}.paper", f"{paper} differs from the value {figures[source]} of its "
                   f"source {source!r}")
        return False
    return True


# Per claim kind, what its fields must satisfy beyond their types (errors added; False: refused).
CLAIM_CHECKS = {"value": _value_ok, "comparison": _comparison_ok,
                "equivalence": _equivalence_ok, "ranking": _ranking_ok}


def _claim_references_ok(errors: Errors, path: str, good: dict, arms, frameworks,
                         published_ids: set[str]) -> bool:
    """The arms, frameworks and published figure a claim names exist."""
    ok = all(check_arm(errors, f"{path}.{key}", good[key], arms)
             for key in ("arm", "better", "worse", "best") if key in good)
    for name in good.get("arms", []):
        ok = check_arm(errors, f"{path}.arms", name, arms) and ok
    for name in good.get("frameworks", []):
        if name not in frameworks:
            errors.add(f"{path}.frameworks", f"{name!r} is not among the protocol's "
                       f"frameworks ({', '.join(frameworks)})")
            ok = False
    if "source" in good and good["source"] not in published_ids:
        errors.add(f"{path}.source", f"{good['source']!r} is not the id of a [[published]] "
                   f"figure; ids: {', '.join(sorted(published_ids)) or '(none)'}")
        ok = False
    return ok


def _parse_claim(errors: Errors, path: str, item: dict, arms, frameworks,
                 published: tuple[Published, ...], ids: set[str]) -> Claim | None:
    """One [[claims]] table: its kind's keys, its references, its kind's checks, a unique id."""
    kind = item.get("kind")
    schema = CLAIM_COMMON | (CLAIM_KIND.get(kind, {}) if isinstance(kind, str) else {})
    good = check_table(errors, path, item, schema)
    if not isinstance(kind, str) or kind not in CLAIM_KIND:
        return None
    figures = {p.id: p.value for p in published}
    ok = _claim_references_ok(errors, path, good, arms, frameworks, set(figures))
    ok = CLAIM_CHECKS[kind](errors, path, good, frameworks, figures) and ok
    if "id" in good:
        if good["id"] in ids:
            errors.add(f"{path}.id", f"{good['id']!r} is used twice; ids are unique")
        ids.add(good["id"])
    required = {k for k, (_, req) in schema.items() if req}
    if not ok or required - set(good):
        return None
    tuples = {key: tuple(good[key]) for key in ("arms", "frameworks") if key in good}
    return Claim(**(good | tuples))


def _parse_claims(errors: Errors, items: Any, arms, frameworks, published
                  ) -> tuple[Claim, ...]:
    if items is None:
        return ()
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        errors.bad("claims", items, "an array of tables ([[claims]])")
        return ()
    ids: set[str] = set()
    found = [_parse_claim(errors, f"claims[{i}]", item, arms, frameworks, published, ids)
             for i, item in enumerate(items)]
    return tuple(claim for claim in found if claim is not None)


def _parse_differences(errors: Errors, items: Any, arms, claims: Any
                       ) -> tuple[Difference, ...]:
    """[[differences]]: each names an arm or a claim of this protocol that tests it, or
    neither (not tested). `claims` is the raw [[claims]] array: a claim refused for another
    reason still counts as named."""
    if items is None:
        return ()
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        errors.bad("differences", items, "an array of tables ([[differences]])")
        return ()
    claim_ids = [c["id"] for c in claims if isinstance(c, dict) and isinstance(c.get("id"), str)] \
        if isinstance(claims, list) else []
    result, names = [], set()
    for i, item in enumerate(items):
        path = f"differences[{i}]"
        good = check_table(errors, path, item, DIFFERENCE)
        ok = "arm" not in good or check_arm(errors, f"{path}.arm", good["arm"], arms)
        if "claim" in good and good["claim"] not in claim_ids:
            errors.add(f"{path}.claim", f"{good['claim']!r} is not a claim"
                       f"{did_you_mean(good['claim'], claim_ids)}; claims: "
                       f"{', '.join(claim_ids) or '(none)'}")
            ok = False
        if "name" in good:
            if good["name"] in names:
                errors.add(f"{path}.name", f"{good['name']!r} is used twice; names are unique")
            names.add(good["name"])
        if ok and not {"name", "text"} - set(good):
            result.append(Difference(**good))
    return tuple(result)


def _parse_sequential(errors: Errors, table: dict) -> dict[str, Any]:
    sequential = check_table(errors, "sequential", table, SEQUENTIAL)
    stages, most = sequential.get("stages"), sequential.get("max_seeds")
    if stages and most is not None and stages[-1] != most:
        errors.add("sequential.max_seeds", f"{most} differs from the last stage "
                   f"{stages[-1]}; give one of them (the last stage is the most seeds)")
    if stages and ("first" in sequential or "step" in sequential):
        errors.add("sequential.stages", "give either stages or first and step, not both")
    if "first" in sequential and most is not None and sequential["first"] > most:
        errors.add("sequential.first", f"{sequential['first']} is above max_seeds {most}")
    return sequential


def _parse_base(errors: Errors, top: dict, data_table: dict) -> tuple[str | None, dict, dict]:
    """The dataset's name, the base [model] (with its preset) and the base [train]."""
    from transfg.data.readers import DATASETS

    dataset = data_table.get("dataset")
    if dataset is not None and dataset not in DATASETS:
        errors.bad("data.dataset", dataset, ", ".join(DATASETS))
    model_table = dict(top.get("model", {}))
    preset = model_table.pop("preset", None)
    base_model = check_overrides(errors, "model", model_table, ModelConfig)
    if preset is not None:
        if preset in MODEL_PRESETS:
            base_model["preset"] = preset
        else:
            errors.bad("model.preset", preset, ", ".join(MODEL_PRESETS))
    base_train = check_overrides(errors, "train", top.get("train", {}), TrainConfig)
    return dataset, base_model, base_train


def _parse_frameworks(errors: Errors, top: dict) -> tuple[str, ...]:
    frameworks = tuple(top.get("frameworks", ()))
    for name in frameworks:
        if name not in FRAMEWORKS:
            errors.bad("frameworks", name, ", ".join(FRAMEWORKS))
    if len(set(frameworks)) != len(frameworks):
        errors.add("frameworks", f"{list(frameworks)} names a framework twice")
    return frameworks


def parse(data: dict, file: str, path: Path | None = None) -> Protocol:
    """A validated Protocol from parsed TOML; raises ProtocolError with every problem."""
    from transfg.data.readers import DATASETS

    errors = Errors(file)
    top = check_table(errors, "", data, TOP)
    paper = check_table(errors, "paper", top.get("paper", {}), PAPER) if "paper" in top else {}
    data_table = check_table(errors, "data", top["data"], DATA) if "data" in top else {}
    dataset, base_model, base_train = _parse_base(errors, top, data_table)
    arms: dict[str, Arm] = {}
    origins: dict[str, dict[str, Any]] = {}
    if "arms" in top:
        if not top["arms"]:
            errors.add("arms", "empty; a protocol needs at least one arm")
        arms = _resolve_arms(errors, top["arms"], base_model, base_train, origins)
    frameworks = _parse_frameworks(errors, top)
    if dataset in DATASETS:
        _check_against_dataset(errors, dataset, arms, origins, frameworks)
    seeds = _parse_seeds(errors, data["seeds"]) if "seeds" in data else {}
    published = _parse_published(errors, top.get("published"), arms)
    claims = _parse_claims(errors, top.get("claims"), arms, frameworks, published)
    differences = _parse_differences(errors, top.get("differences"), arms, top.get("claims"))
    smoke = Smoke(**check_table(errors, "smoke", top.get("smoke", {}), SMOKE))
    sequential = _parse_sequential(errors, top["sequential"]) if "sequential" in top else None
    if errors.items:
        raise ProtocolError(errors.items)
    assert isinstance(dataset, str)  # data.dataset is required: its absence is an error above
    return Protocol(path=path or Path(file), name=top["name"], title=top["title"], paper=paper,
                    dataset=dataset, data_root=data_table.get("root"),
                    weights=data_table.get("weights"), arms=arms, frameworks=frameworks,
                    seeds=seeds, reading=top.get("reading", "final"), claims=claims,
                    published=published, smoke=smoke, devices=top.get("devices", 1),
                    description=top.get("description", ""), seed_sd=top.get("seed_sd"),
                    sequential=sequential, differences=differences)


def load(path: str | Path) -> Protocol:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ProtocolError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ProtocolError([f"{path}: cannot be read ({error})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProtocolError([f"{path}: not valid TOML: {error}"]) from None
    return parse(data, str(path), path)


def load_all(paths) -> list[Protocol]:
    """Every protocol, or ProtocolError with the errors of all of them."""
    protocols, errors = [], []
    for path in paths:
        try:
            protocols.append(load(path))
        except ProtocolError as error:
            errors.extend(error.errors)
    if errors:
        raise ProtocolError(errors)
    return protocols


