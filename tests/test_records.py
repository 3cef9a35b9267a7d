"""The record model: a stable JSON form that reads back as the same record."""

import math

from rldk_track.records import (
    Alert,
    Artifact,
    CheckpointHealth,
    Metrics,
    Params,
    RunEnd,
    RunStart,
    Summary,
    Tags,
    from_json,
    to_json,
)


def test_every_record_kind_reads_back_from_its_json_form():
    records = [
        RunStart(0, 1.0, "r1", "name", "proj", {"mlflow": {"tracking_uri": "sqlite:///x.db"}}, 0, 1, "host", 42, "0.1.0"),
        # the Event fields are always dicts in the JSON form, with the run id in model_info
        Metrics(1, 2.0, 3, {"kl": 0.1, "loss": math.inf}, {}, {}, {"run_id": "r1"}, ("non-finite 'loss': inf",)),
        Params(2, 2.0, {"lr": 1e-5, "model": {"n_layer": 2}}),
        Tags(3, 2.0, {"team": "rl"}),
        Summary(4, 2.0, {"train_runtime": 12.5}),
        Alert(5, 2.0, 3, "kl_spike", "critical", "KL jumped", "kl", 0.9, 0.3, "lower the lr"),
        Artifact(6, 2.0, "rldk/alerts.jsonl", path="/tmp/a", size=10),
        CheckpointHealth(7, 2.0, 10, "/ckpt", 0.9, ("drift",), {"drift": 0.1}, ("check lr",)),
        RunEnd(8, 3.0, "success"),
    ]
    for record in records:
        assert from_json(to_json(record, "r1")) == record


def test_a_metrics_line_keeps_the_seed_event_fields():
    line = to_json(Metrics(1, 2.0, 3, {"kl": 0.1}), "r1")
    assert {"step", "wall_time", "metrics", "rng", "data_slice", "model_info", "notes"} <= line.keys()
    assert line["model_info"] == {"run_id": "r1"} and line["kind"] == "metrics" and line["schema_version"] == 1


def test_a_seed_event_line_without_kind_reads_as_metrics():
    record = from_json({"step": 5, "wall_time": 1.0, "metrics": {"reward_mean": 0.5}, "rng": {}, "notes": []})
    assert isinstance(record, Metrics) and record.step == 5 and record.values == {"reward_mean": 0.5}

