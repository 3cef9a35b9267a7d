"""A request MLflow applied but whose answer was lost (the connection dropped, or a 500 sent
after the work was done) is retried without storing anything twice: one MLflow run, each point
once. A loopback proxy in front of a real MLflow server does the losing."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

import rldk_track  # noqa: E402
from rldk_testsupport.fault_proxy import FaultProxy  # noqa: E402
from rldk_track.vocab.mlflow import RUN_ID_TAG  # noqa: E402

POINTS = 300


@pytest.mark.parametrize("fault", ["drop", "500"])
@pytest.mark.parametrize("endpoint", ["runs/create", "experiments/create", "runs/log-batch", "mlflow-artifacts/artifacts", "runs/update"])
def test_a_lost_answer_stores_one_run_and_each_point_once(
    mlflow_server, tmp_path: Path, fault: str, endpoint: str
) -> None:
    project = f"lost-{uuid.uuid4().hex[:8]}"
    with FaultProxy(mlflow_server.uri, {endpoint: (fault, 2)}) as proxy:
        run = rldk_track.init(backend=["mlflow"], dir=tmp_path, project=project,
                              mlflow={"tracking_uri": proxy.uri})
        run.log_params({"lr": 0.1})
        for step in range(POINTS):
            run.log({"reward": float(step)}, step=step)
        report = run.finish(timeout=120)
        assert report.complete, report.describe()
        assert proxy.injected[endpoint] >= 1, f"no {endpoint} request went through the proxy"

    client = mlflow_server.client()
    experiment = client.get_experiment_by_name(project)
    runs = client.search_runs([experiment.experiment_id], f"tags.`{RUN_ID_TAG}` = '{run.id}'")
    assert len(runs) == 1, [r.info.run_id for r in runs]
    history = sorted((m.step, m.value) for m in client.get_metric_history(runs[0].info.run_id, "reward"))
    assert history == [(step, float(step)) for step in range(POINTS)]
    assert runs[0].data.params == {"lr": "0.1"}
    assert runs[0].info.status == "FINISHED"
