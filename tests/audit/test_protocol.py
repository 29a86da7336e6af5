"""Protocol validation: a corpus of malformed protocols, each with its own message (file, key
path, bad value, what is allowed) and exit status 2 from `audit validate`; every shipped protocol
validates."""

from pathlib import Path

import pytest

from audit.cli import main
from audit.protocol import ProtocolError, load

PROTOCOLS = Path(__file__).parents[2] / "protocols"

BASE = """\
version = 1
name = "mini"
title = "A small protocol"
frameworks = ["torch", "jittor"]
seeds = [0, 1, 2]
reading = "final"

[paper]
title = "TransFG"

[data]
dataset = "digits"
root = "bundled"

[model]
preset = "tiny"

[train]
steps = 40
warmup_steps = 4

[arms.transfg]
description = "TransFG"

[arms.vit]
model = { variant = "vit", contrastive = false }

[[published]]
id = "paper"
value = 91.7
setting = "the paper, Table 2"
arm = "transfg"
source = { kind = "paper", citation = "He et al., AAAI 2022, Table 2" }

[[claims]]
id = "value"
kind = "value"
text = "TransFG reaches 91.7%."
arm = "transfg"
paper = 91.7
tolerance = 1.0
source = "paper"

[[claims]]
id = "beats-vit"
kind = "comparison"
text = "TransFG beats ViT."
better = "transfg"
worse = "vit"

[[differences]]
name = "Batch size"
text = "The paper says 16; the official code uses 64."
arm = "vit"

[[differences]]
name = "Model selection"
text = "The official code reports the best test-set evaluation."
claim = "value"
"""

# (case, replace this, with this, expected message part)
CORPUS = [
    ("bad TOML", 'title = "A small protocol"', 'title = "A small protocol', "not valid TOML"),
    ("misspelled top key", 'title = "A small', 'titel = "A small',
     "titel: unknown key; did you mean 'title'?"),
    ("misspelled arm key", 'model = { variant = "vit"', 'modle = { variant = "vit"',
     "arms.vit.modle: unknown key; did you mean 'model'?"),
    ("misspelled model field", 'preset = "tiny"', 'preset = "tiny"\nhiden_size = 32',
     "model.hiden_size: unknown key; did you mean 'hidden_size'?"),
    ("wrong type", "steps = 40", 'steps = "forty"',
     "train.steps: 'forty' is not allowed; allowed: an integer"),
    ("bad literal", 'preset = "tiny"', 'preset = "tiny"\nsplit = "diagonal"',
     "model.split: 'diagonal' is not allowed; allowed: one of 'overlap', 'non-overlap'"),
    ("negative seed", "seeds = [0, 1, 2]", "seeds = [0, -1, 2]",
     "seeds: -1 is not allowed; allowed: seeds are integers 0 .. 2^32-1"),
    ("repeated seed", "seeds = [0, 1, 2]", "seeds = [0, 1, 1]", "repeats a seed"),
    ("empty seeds", "seeds = [0, 1, 2]", "seeds = []", "seeds: [] is not allowed"),
    ("unknown seed axis", "seeds = [0, 1, 2]", "seeds = { init = [0], shuffle = [1] }",
     "seeds.shuffle: unknown key"),
    ("version", "version = 1", "version = 2", "version: 2 is not allowed; allowed: one of 1"),
    ("missing name", 'name = "mini"\n', "", "name: missing (required)"),
    ("unknown dataset", 'dataset = "digits"', 'dataset = "birds"',
     "data.dataset: 'birds' is not allowed; allowed: cub, cars"),
    ("unknown framework", '["torch", "jittor"]', '["pytorch", "jittor"]',
     "frameworks: 'pytorch' is not allowed; allowed: torch, jittor, official"),
    ("claim names an unknown arm", 'arm = "transfg"\npaper', 'arm = "transfgg"\npaper',
     "claims[0].arm: 'transfgg' is not an arm; did you mean 'transfg'?"),
    ("tolerance missing", "tolerance = 1.0\n", "", "claims[0].tolerance: missing (required)"),
    ("claim source missing", 'source = "paper"\n', "", "claims[0].source: missing (required)"),
    ("claim source unknown", 'source = "paper"\n', 'source = "papr"\n',
     "claims[0].source: 'papr' is not the id of a [[published]] figure; ids: paper"),
    ("published without source", 'source = { kind = "paper", citation = "He et al., AAAI 2022,'
     ' Table 2" }\n', "", "published[0].source: missing (required)"),
    ("source without citation", 'citation = "He et al., AAAI 2022, Table 2"', 'url = "x"',
     "published[0].source.citation: missing (required)"),
    ("published value out of range", "value = 91.7", "value = 917",
     "published[0].value: 917 is not allowed; allowed: a percentage between 0 and 100"),
    ("extends an unknown arm", 'model = { variant = "vit"', 'extends = "transfgg"\nmodel = '
     '{ variant = "vit"', "arms.vit.extends: 'transfgg' is not an arm; did you mean 'transfg'?"),
    ("extends cycle", 'description = "TransFG"', 'description = "TransFG"\nextends = "transfg"',
     "arms.transfg.extends: cycle: transfg -> transfg"),
    ("unknown claim kind", 'kind = "comparison"', 'kind = "bigger"',
     "claims[1].kind: 'bigger' is not allowed; allowed: one of value, comparison"),
    ("comparison with itself", 'worse = "vit"', 'worse = "transfg"',
     "claims[1].worse: compares an arm with itself"),
    ("warmup too long", "warmup_steps = 4", "warmup_steps = 40",
     "arms.transfg: train.warmup_steps=40, allowed: 0 <= warmup < steps"),
    ("smoke steps zero", "[paper]", "[smoke]\nsteps = 0\n\n[paper]",
     "smoke.steps: 0 is not allowed; allowed: a positive integer"),
    ("bad reading", 'reading = "final"', 'reading = "median"',
     "reading: 'median' is not allowed; allowed: one of final, best"),
    ("seed spread not positive", 'reading = "final"', 'reading = "final"\nseed_sd = 0',
     "seed_sd: 0 is not allowed; allowed: a seed-to-seed standard deviation in percentage "
     "points, > 0 and <= 50"),
    ("seed spread as text", 'reading = "final"', 'reading = "final"\nseed_sd = "0.3"',
     "seed_sd: '0.3' is not allowed; allowed: a seed-to-seed standard deviation"),
    ("seed spread misspelled", 'reading = "final"', 'reading = "final"\nseed_spread = 0.3',
     "seed_spread: unknown key; did you mean 'seed_sd'?"),
    ("model that cannot be built", 'preset = "tiny"', 'preset = "tiny"\nnum_heads = 5',
     "is not divisible by num_heads=5"),
    ("duplicate claim id", 'id = "beats-vit"', 'id = "value"',
     "claims[1].id: 'value' is used twice"),
    ("unknown preset", 'preset = "tiny"', 'preset = "huge"',
     "model.preset: 'huge' is not allowed; allowed: vit_b16, tiny"),
    ("class count of the dataset", 'preset = "tiny"', 'preset = "tiny"\nnum_classes = 12',
     "model.num_classes: 12 does not match: the dataset 'digits' (UCI handwritten digits "
     "(bundled)) has 10 classes (arms: transfg, vit); allowed: 10"),
    ("class count of an arm", 'model = { variant = "vit"', 'model = { num_classes = 9, '
     'variant = "vit"', "arms.vit.model.num_classes: 9 does not match: the dataset 'digits' "
     "(UCI handwritten digits (bundled)) has 10 classes; allowed: 10"),
    ("arms empty", '[arms.transfg]\ndescription = "TransFG"\n\n[arms.vit]\nmodel = { variant = '
     '"vit", contrastive = false }\n', "[arms]\n", "arms: empty"),
    ("difference tested by an unknown arm", 'arm = "vit"\n\n[[differences]]',
     'arm = "vitt"\n\n[[differences]]',
     "differences[0].arm: 'vitt' is not an arm; did you mean 'vit'?; arms: transfg, vit"),
    ("difference tested by an unknown claim", 'claim = "value"', 'claim = "valeu"',
     "differences[1].claim: 'valeu' is not a claim; did you mean 'value'?; claims: value, "
     "beats-vit"),
    ("difference with a misspelled key", 'claim = "value"', 'claims = "value"',
     "differences[1].claims: unknown key; did you mean 'claim'?; allowed: name, text, arm, "
     "claim"),
    ("difference without text", 'text = "The paper says 16; the official code uses 64."\n',
     "", "differences[0].text: missing (required)"),
    ("difference named twice", 'name = "Model selection"', 'name = "Batch size"',
     "differences[1].name: 'Batch size' is used twice"),
]


def write(tmp_path, text, name="p.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_base_protocol_is_valid(tmp_path):
    protocol = load(write(tmp_path, BASE))
    assert list(protocol.arms) == ["transfg", "vit"] and protocol.seeds == {"seed": (0, 1, 2)}
    assert protocol.arms["vit"].model.variant == "vit"
    assert protocol.arms["transfg"].model.hidden_size == 32  # the tiny preset


@pytest.mark.parametrize("case,old,new,expected", CORPUS, ids=[c[0] for c in CORPUS])
def test_malformed_protocol_gets_its_message_and_exit_status_2(tmp_path, capsys, case, old,
                                                               new, expected):
    assert old in BASE, case
    path = write(tmp_path, BASE.replace(old, new, 1))
    before = sorted(tmp_path.rglob("*"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert str(path) in err  # every message names the file
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_every_error_is_reported_at_once(tmp_path):
    text = (BASE.replace("steps = 40", 'steps = "x"').replace('title = "A small',
                                                              'titel = "A small')
            .replace("tolerance = 1.0\n", ""))
    with pytest.raises(ProtocolError) as error:
        load(write(tmp_path, text))
    joined = "\n".join(error.value.errors)
    for part in ("train.steps", "titel", "claims[0].tolerance"):
        assert part in joined
    assert len(error.value.errors) >= 3


def test_errors_of_several_files_are_reported_together(tmp_path, capsys):
    a = write(tmp_path, BASE.replace("version = 1", "version = 3"), "a.toml")
    b = write(tmp_path, BASE.replace("seeds = [0, 1, 2]", "seeds = [-5]"), "b.toml")
    assert main(["validate", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert f"{a}: version" in err and f"{b}: seeds" in err


def test_a_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_declared_seed_spread_is_kept_in_points(tmp_path):
    assert load(write(tmp_path, BASE)).seed_sd is None
    text = BASE.replace('reading = "final"', 'reading = "final"\nseed_sd = 0.3')
    assert load(write(tmp_path, text)).seed_sd == 0.3


def test_differences_name_the_arm_or_claim_that_tests_them(tmp_path):
    from audit.protocol import Difference

    protocol = load(write(tmp_path, BASE.replace('claim = "value"\n', "")))
    assert protocol.differences == (
        Difference("Batch size", "The paper says 16; the official code uses 64.", arm="vit"),
        Difference("Model selection", "The official code reports the best test-set "
                   "evaluation."))
    assert [d.tested for d in protocol.differences] == [True, False]


def test_each_shipped_protocol_has_its_own_differences():
    cub = load(PROTOCOLS / "transfg-cub.toml")
    tested = {d.name: (d.arm, d.claim) for d in cub.differences if d.tested}
    assert tested == {"Batch size": ("paper-batch", None),
                      "Model selection on the test set": (None, "transfg-value-best")}
    dogs = load(PROTOCOLS / "transfg-dogs.toml")
    assert "Learning rate" in {d.name for d in dogs.differences}
    assert not any(d.tested for d in load(PROTOCOLS / "default.toml").differences)


def test_arms_extend_each_other(tmp_path):
    text = BASE.replace('[arms.vit]', '[arms.vit-contrastive]\nextends = "vit"\nmodel = '
                        '{ contrastive = true }\n\n[arms.vit]')
    protocol = load(write(tmp_path, text))
    arm = protocol.arms["vit-contrastive"]
    assert arm.model.variant == "vit" and arm.model.contrastive


def test_separate_seed_axes(tmp_path):
    protocol = load(write(tmp_path, BASE.replace("seeds = [0, 1, 2]",
                                                 "seeds = { init = [0, 1], order = [5] }")))
    assert protocol.seeds == {"init": (0, 1), "order": (5,)}


@pytest.mark.parametrize("path", sorted(PROTOCOLS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_protocols_validate(path, capsys):
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_a_value_claim_must_quote_its_source(tmp_path):
    with pytest.raises(ProtocolError, match=r"claims\[0\].paper: 91.5 differs from the value "
                                            r"91.7 of its source 'paper'"):
        load(write(tmp_path, BASE.replace("paper = 91.7", "paper = 91.5")))


def test_an_unquoted_dotted_arm_name_gets_a_hint(tmp_path):
    text = BASE.replace("[arms.vit]", "[arms.alpha-0.2]\n[arms.vit]")
    with pytest.raises(ProtocolError, match=r'must be quoted: \[arms."alpha-0.2"\]'):
        load(write(tmp_path, text))


def test_a_cars_protocol_without_num_classes_is_refused_with_the_two_numbers(tmp_path, capsys):
    """The presets' 200 classes are CUB's: a Cars protocol that forgets num_classes would train a
    200-way head without a word."""
    shipped = (PROTOCOLS / "transfg-cars.toml").read_text()
    assert "\nnum_classes = 196\n" in shipped
    path = write(tmp_path, shipped.replace("\nnum_classes = 196\n", "\n"), "cars.toml")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert (f"{path}: model.num_classes: absent, so the vit_b16 preset's default 200 applies "
            "(arms: transfg, vit); the dataset 'cars' (Stanford Cars) has 196 classes: set "
            "model.num_classes = 196") in err, err
    assert "1 error(s)" in err  # one error for the one missing key, not one per arm


def test_a_wrong_class_count_is_named_where_it_is_set_and_every_arm_after_extends_checked(
        tmp_path):
    text = BASE.replace("[arms.vit]", '[arms.wide]\nmodel = { num_classes = 11 }\n\n'
                        '[arms.wider]\nextends = "wide"\n\n[arms.fixed]\nextends = "wide"\n'
                        'model = { num_classes = 10 }\n\n[arms.vit]')
    with pytest.raises(ProtocolError) as error:
        load(write(tmp_path, text))
    assert error.value.errors == [
        f"{tmp_path / 'p.toml'}: arms.wide.model.num_classes: 11 does not match: the dataset "
        "'digits' (UCI handwritten digits (bundled)) has 10 classes (arms: wide, wider); "
        "allowed: 10"]


def test_the_input_size_is_free_for_our_transforms_and_fixed_for_the_official_code(tmp_path):
    """Our transforms follow the model's input (resize at the paper's 600/448 ratio); the
    official code hard-codes each dataset's, so with it the model must take that size."""
    ours = BASE.replace('preset = "tiny"', 'preset = "tiny"\nimage_size = 48')
    assert load(write(tmp_path, ours)).arms["transfg"].model.image_size == 48
    with pytest.raises(ProtocolError, match=r"arms.vit.model.image_size: 48 does not match: "
                                            r"the official code's transforms for 'digits'.* "
                                            r"crop 64; allowed: 64"):
        load(write(tmp_path, BASE.replace('["torch", "jittor"]', '["torch", "official"]')
                   .replace('model = { variant = "vit"', 'model = { image_size = 48, '
                            'variant = "vit"')))
