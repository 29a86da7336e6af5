"""One builder for the protocol files the tests write (TOML text): the bundled digits, the tiny
model, the arms, training and smoke size each test chooses, and any further tables."""

from __future__ import annotations

import json

VIT = {"model": {"variant": "vit", "contrastive": False}}  # the ViT baseline arm
TRANSFG_AND_VIT = {"transfg": {}, "vit": VIT}

# 60 updates, an evaluation and a checkpoint every 20: long enough (about 20 s on 2 cores) for a
# run to be stopped between its first checkpoint and its end (the runner and Slurm tests).
STOPPABLE_TRAIN = {"steps": 60, "warmup_steps": 6, "eval_every": 20, "checkpoint_every": 20,
                   "eval_batch_size": 64, "workers": 0}
STOPPABLE_SMOKE = {"steps": 60, "train": 160, "test": 128}


def toml(value) -> str:
    """A TOML value: a boolean, number, string, array or inline table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return repr(value)


def table(header: str, values: dict) -> str:
    return f"{header}\n" + "".join(f"{k} = {toml(v)}\n" for k, v in values.items())


def protocol_text(name: str, title: str, *, train: dict, arms: dict | None = None,
                  frameworks=("torch",), seeds=(0, 1), smoke: dict | None = None,
                  top: dict | None = None, tables: dict | None = None) -> str:
    """A protocol on the bundled digits with the tiny model. `arms`: name -> its overrides
    (default TransFG and ViT); `top`: more top-level keys (e.g. devices); `tables`: more
    tables after the smoke size, name -> a table, or a list of them (an array of tables)."""
    text = (f"version = 1\nname = {toml(name)}\ntitle = {toml(title)}\n"
            f"frameworks = {toml(frameworks)}\nseeds = {toml(seeds)}\n"
            + "".join(f"{k} = {toml(v)}\n" for k, v in (top or {}).items())
            + "\n" + table("[paper]", {"title": "TransFG"})
            + "\n" + table("[data]", {"dataset": "digits", "root": "bundled"})
            + "\n" + table("[model]", {"preset": "tiny"})
            + "\n" + table("[train]", train) + "\n"
            + "".join(table(f"[arms.{arm}]", values)
                      for arm, values in (TRANSFG_AND_VIT if arms is None else arms).items()))
    if smoke is not None:
        text += "\n" + table("[smoke]", smoke)
    for header, values in (tables or {}).items():
        for one in values if isinstance(values, list) else [values]:
            brackets = f"[[{header}]]" if isinstance(values, list) else f"[{header}]"
            text += "\n" + table(brackets, one)
    return text


def until_decided_text(name: str, title: str) -> str:
    """A protocol for `--until-decided` (PyTorch, 12 updates a run, Pocock looks at 3 and 5
    seeds): a value claim any run meets (ViT at 50% within 60 points: decided at the first
    look) and a comparison no number of seeds decides (`twin` is TransFG under another name:
    the same runs, the same run ids, so their paired difference is 0 on every seed, which
    measures no spread). Stage 1 runs 3 seeds of TransFG and ViT, stage 2 two more of TransFG."""
    return protocol_text(
    name, title, seeds=[0, 1, 2],
    train={"steps": 12, "warmup_steps": 2, "eval_every": 12, "checkpoint_every": 12,
           "eval_batch_size": 64, "workers": 0},
    arms={"transfg": {}, "twin": {"description": "TransFG again"}, "vit": VIT},
    smoke={"steps": 12, "train": 64, "test": 64},
    tables={"sequential": {"spending": "pocock", "first": 3, "step": 2, "max_seeds": 5},
            "published": [{"id": "paper", "value": 50.0, "setting": "paper", "arm": "vit",
                           "source": {"kind": "paper", "citation": "test"}}],
            "claims": [{"id": "loose-value", "kind": "value",
                        "text": "ViT reaches 50% within 60 points.", "arm": "vit",
                        "paper": 50.0, "tolerance": 60.0, "source": "paper"},
                       {"id": "twin-better", "kind": "comparison",
                        "text": "TransFG's twin beats TransFG.", "better": "twin",
                        "worse": "transfg", "margin": 0.0}]})
