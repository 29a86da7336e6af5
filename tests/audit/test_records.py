"""The read model's run record: RunResult holds exactly the fields the store summarises, and a
summary with a missing or malformed value is refused with the run, the file and the field."""

import dataclasses

import pytest

from audit.records import SCHEMA_VERSION, RunResult
from audit.store import RESULT_KEYS, SUMMARY_VERSION
from transfg.run_files import RunFileError

SUMMARY = {"final_accuracy": 0.5, "final_step": 40, "best_accuracy": 0.625, "best_step": 20,
           "correct": 50, "test_images": 100, "train_images": 300, "steps": 40,
           "effective_batch": 16, "images_per_s": 120.5}


def test_a_run_result_has_the_summarised_fields_in_their_order(tmp_path):
    assert tuple(f.name for f in dataclasses.fields(RunResult)) == RESULT_KEYS
    result = RunResult.from_summary(SUMMARY, tmp_path / "r1-0" / "result.json")
    assert result.best_accuracy == 0.625 and result.to_dict() == SUMMARY
    assert list(result.to_dict()) == list(RESULT_KEYS)
    assert RunResult.schema_version == SCHEMA_VERSION == SUMMARY_VERSION  # one number for both
    # the optional fields may be absent
    sparse = {k: v for k, v in SUMMARY.items() if k not in ("train_images", "images_per_s")}
    assert RunResult.from_summary(sparse, tmp_path / "r1-0" / "result.json").images_per_s is None


@pytest.mark.parametrize(("field", "value"), [("final_accuracy", 1.5), ("best_step", "20"),
                                              ("correct", None), ("images_per_s", -1.0),
                                              ("test_images", True)])
def test_a_malformed_value_names_the_run_the_file_and_the_field(tmp_path, field, value):
    with pytest.raises(RunFileError) as raised:
        RunResult.from_summary(SUMMARY | {field: value}, tmp_path / "r1-abc" / "result.json")
    message = str(raised.value)
    assert message.startswith(f"run r1-abc: result.json: {field}={value!r} in its summary")
    assert "allowed:" in message
