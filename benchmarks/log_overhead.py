"""Training-thread cost of logging one 50-metric step, rldk_track next to what users do today.

All contenders run in ONE process against the SAME local MLflow server (started through
``backends/mlflow/serve_local.sh``), the same TensorBoard root, offline W&B and one local trackio
store (``TRACKIO_DIR`` in the work dir): ``trackio.log`` directly next to ``run.log`` to trackio. Their calls are
interleaved in blocks so machine noise hits them alike. Reported: p50 / p99 of the time the
training thread spends inside the logging call, and each one's ratio to rldk_track.

Then end-to-end delivery: 100k points (2000 steps x 50 metrics) logged through rldk_track to the
MLflow server, timed from the last ``log`` until every point is stored (``finish`` returns when
the worker has delivered them), next to the same points sent as one synchronous ``log_batch``
stream (1000 metrics per call) by ``MlflowClient`` in the same process.

    python benchmarks/log_overhead.py [--steps 400] [--slow-steps 100] [--delivery-steps 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from mlflow_server import start_mlflow_server, stop_mlflow_server  # benchmarks/mlflow_server.py

N_METRICS = 50


def step_values(step: int) -> dict[str, float]:
    return {f"metric_{i:02d}": (step * 31 + i) % 97 / 97.0 for i in range(N_METRICS)}


def percentile(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="steps per fast contender")
    parser.add_argument("--slow-steps", type=int, default=100, help="steps for synchronous MLflow (slow)")
    parser.add_argument("--delivery-steps", type=int, default=2000, help="steps (x50 metrics) for end-to-end delivery")
    args = parser.parse_args()

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    workdir = Path(tempfile.mkdtemp(prefix="rldk-bench-"))
    server, uri = start_mlflow_server(workdir)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["WANDB_DIR"] = str(workdir)
    os.environ["TRACKIO_DIR"] = str(workdir / "trackio")  # read once, when trackio is imported
    try:
        run_overhead(args, workdir, uri)
        run_delivery(args, workdir, uri)
    finally:
        stop_mlflow_server(server)
        shutil.rmtree(workdir, ignore_errors=True)


def run_overhead(args: argparse.Namespace, workdir: Path, uri: str) -> None:
    import mlflow
    import trackio
    import wandb
    from accelerate import Accelerator
    from mlflow import MlflowClient
    from torch.utils.tensorboard import SummaryWriter

    import rldk_track

    rldk = rldk_track.init(
        backend=["jsonl", "mlflow", "tensorboard", "wandb"], dir=workdir / "rldk", project="bench",
        mlflow={"tracking_uri": uri}, wandb={"mode": "offline", "dir": str(workdir)},
    )
    rldk_trackio = rldk_track.init(backend="trackio", dir=workdir / "rldk-trackio", project="bench-trackio")
    trackio_direct = trackio.init(project="bench-trackio-direct", name="direct", auto_log_cpu=False, auto_log_gpu=False)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("bench-direct") or client.get_experiment(client.create_experiment("bench-direct"))
    direct_run = client.create_run(exp.experiment_id)
    writer = SummaryWriter(str(workdir / "tb-direct"))
    wb = wandb.init(project="bench-direct", mode="offline", dir=str(workdir), reinit="create_new")
    # Accelerate's MLflow tracker owns mlflow's one fluent (global) run; the fluent contenders
    # below log into it too, under their own key prefix.
    accelerator = Accelerator(log_with=["mlflow", "tensorboard", "wandb"], project_dir=str(workdir / "accelerate"))
    accelerator.init_trackers("bench-accelerate")

    from mlflow.entities import Metric

    def rldk_log(step: int, values: dict[str, float]) -> None:
        rldk.log(values, step=step)

    def rldk_trackio_log(step: int, values: dict[str, float]) -> None:
        rldk_trackio.log(values, step=step)

    def trackio_log(step: int, values: dict[str, float]) -> None:
        trackio_direct.log(values, step=step)

    def mlflow_client_sync(step: int, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        client.log_batch(direct_run.info.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def mlflow_fluent_sync(step: int, values: dict[str, float]) -> None:
        mlflow.log_metrics({f"sync/{k}": v for k, v in values.items()}, step=step)

    def mlflow_fluent_async(step: int, values: dict[str, float]) -> None:
        mlflow.log_metrics({f"async/{k}": v for k, v in values.items()}, step=step, synchronous=False)

    def tensorboard_add_scalar(step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            writer.add_scalar(key, value, step)

    def wandb_log(step: int, values: dict[str, float]) -> None:
        wb.log(values, step=step)

    def accelerate_log(step: int, values: dict[str, float]) -> None:
        accelerator.log(values, step=step)

    contenders: dict[str, tuple[Callable[[int, dict[str, float]], None], int]] = {
        "rldk_track run.log (jsonl+mlflow+tensorboard+wandb)": (rldk_log, args.steps),
        "mlflow.log_metrics (sync, server)": (mlflow_fluent_sync, args.slow_steps),
        "MlflowClient.log_batch (sync, server)": (mlflow_client_sync, args.slow_steps),
        "mlflow.log_metrics(synchronous=False)": (mlflow_fluent_async, args.steps),
        "SummaryWriter.add_scalar x50": (tensorboard_add_scalar, args.steps),
        "wandb.log (offline)": (wandb_log, args.steps),
        "Accelerator(log_with=[mlflow,tensorboard,wandb]).log": (accelerate_log, args.slow_steps),
        "rldk_track run.log (trackio)": (rldk_trackio_log, args.steps),
        "trackio.log (local)": (trackio_log, args.steps),
    }
    samples: dict[str, list[int]] = {name: [] for name in contenders}
    block = 20
    progress = {name: 0 for name in contenders}
    while any(progress[n] < contenders[n][1] for n in contenders):
        for name, (call, total) in contenders.items():
            for _ in range(min(block, total - progress[name])):
                step = progress[name]
                values = step_values(step)
                start = time.perf_counter_ns()
                call(step, values)
                samples[name].append(time.perf_counter_ns() - start)
                progress[name] += 1

    t0 = time.perf_counter()
    report = rldk.finish(timeout=120)
    rldk_finish = time.perf_counter() - t0
    t0 = time.perf_counter()
    trackio_report = rldk_trackio.finish(timeout=120)
    rldk_trackio_finish = time.perf_counter() - t0
    t0 = time.perf_counter()
    trackio_direct.finish()
    trackio_finish = time.perf_counter() - t0
    writer.close()
    wb.finish()
    accelerator.end_training()

    base = percentile(samples["rldk_track run.log (jsonl+mlflow+tensorboard+wandb)"], 0.5)
    print(f"\nTraining-thread time per logging call, {N_METRICS} metrics per step (µs; ratio = contender p50 / rldk_track p50)")
    print(f"{'contender':58s} {'calls':>6s} {'p50':>10s} {'p99':>10s} {'ratio':>9s}")
    for name, times in samples.items():
        p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
        print(f"{name:58s} {len(times):6d} {p50:10.1f} {p99:10.1f} {p50 / base:8.1f}x")
    print(f"rldk_track finish(): {rldk_finish:.2f} s to deliver everything to 3 trackers; complete={report.complete}")
    print(f"rldk_track finish() to trackio: {rldk_trackio_finish:.2f} s (complete={trackio_report.complete}); "
          f"trackio's own finish(): {trackio_finish:.2f} s")


def run_delivery(args: argparse.Namespace, workdir: Path, uri: str) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    import rldk_track

    steps = args.delivery_steps
    points = steps * N_METRICS
    client = MlflowClient(uri)
    exp_id = client.create_experiment("bench-delivery-direct")

    # The reference: one synchronous stream of full log_batch calls (1000 metrics each).
    run_id = client.create_run(exp_id).info.run_id
    pending: list[Metric] = []
    t0 = time.perf_counter()
    for step in range(steps):
        now = int(time.time() * 1000)
        pending.extend(Metric(k, v, now, step) for k, v in step_values(step).items())
        if len(pending) >= 1000:
            client.log_batch(run_id, metrics=pending[:1000])
            pending = pending[1000:]
    if pending:
        client.log_batch(run_id, metrics=pending)
    direct_s = time.perf_counter() - t0

    run = rldk_track.init(backend=["jsonl", "mlflow"], dir=workdir / "delivery", project="bench-delivery",
                          mlflow={"tracking_uri": uri})
    t0 = time.perf_counter()
    for step in range(steps):
        run.log(step_values(step), step=step)
    logged_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = run.finish(timeout=600)
    drain_s = time.perf_counter() - t1
    total_s = logged_s + drain_s
    mlflow_run = client.search_runs([client.get_experiment_by_name("bench-delivery").experiment_id])[0]
    stored = len(client.get_metric_history(mlflow_run.info.run_id, "metric_00")) * N_METRICS

    print(f"\nEnd-to-end delivery of {points:,} points to the MLflow server")
    print(f"  direct log_batch stream (1000/call, synchronous):  {direct_s:6.2f} s  ({points / direct_s:10,.0f} points/s)")
    print(f"  rldk_track: logging took {logged_s:.2f} s on the training thread; last log -> all stored: {drain_s:.2f} s")
    print(f"  rldk_track first log -> all stored:                 {total_s:6.2f} s  ({points / total_s:10,.0f} points/s)")
    print(f"  ratio rldk_track / direct stream: {total_s / direct_s:.2f}x (target <= 2x); complete={report.complete}; "
          f"points stored: {stored:,}")


if __name__ == "__main__":
    main()
