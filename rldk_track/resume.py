"""Which run a new process continues: a job restarted by its scheduler is the same run.

``rldk_track.init`` takes the run id from ``run_id=``, else ``RLDK_RUN_ID``, else
:func:`requeued_run_id`, else a new one. A scheduler that restarts a job keeps an id in its
environment: SLURM keeps ``SLURM_JOB_ID`` (``SLURM_ARRAY_JOB_ID``/``SLURM_ARRAY_TASK_ID`` for an
array task) across ``scontrol requeue`` and ``--requeue`` after preemption; torchrun keeps
``TORCHELASTIC_RUN_ID`` across its ``--max-restarts``. The run id is derived from that id, the
project and the run name, so every attempt of the job records into one run, while a job that
starts several differently named runs keeps them apart. A run of that id which already ended
with ``success`` is not continued (a job that runs the same script twice gets two runs).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping

from rldk_track.eventlog import read_records
from rldk_track.layout import RunLayout


def job_identity(environ: Mapping[str, str] = os.environ) -> str | None:
    """The scheduler's id for this job, the same in every restart of it (None outside one)."""
    if environ.get("SLURM_ARRAY_JOB_ID") and environ.get("SLURM_ARRAY_TASK_ID"):
        return f"slurm:{environ['SLURM_ARRAY_JOB_ID']}_{environ['SLURM_ARRAY_TASK_ID']}"
    if environ.get("SLURM_JOB_ID"):
        return f"slurm:{environ['SLURM_JOB_ID']}"
    elastic = environ.get("TORCHELASTIC_RUN_ID", "")
    if elastic and elastic.lower() != "none":  # "none": torchrun without a rendezvous id
        return f"torchelastic:{elastic}"
    return None


def requeued_run_id(run_dir: Path, project: str, run_name: str | None,
                    environ: Mapping[str, str] = os.environ) -> str | None:
    """The run id every attempt of this scheduler job shares (see the module docstring), or None
    outside a scheduler job or when that run already ended with ``success``."""
    job = job_identity(environ)
    if job is None:
        return None
    run_id = hashlib.sha1(f"{job}|{project}|{run_name or ''}".encode()).hexdigest()[:12]
    return None if last_status(RunLayout(run_dir, run_id).event_log) == "success" else run_id


def last_status(event_log: Path) -> str | None:
    """The status of the last ``run_end`` in an event log (None: no log, or it never ended)."""
    if not event_log.exists():
        return None
    status = None
    for _, record in read_records(event_log):
        if record.kind == "run_start":
            status = None
        elif record.kind == "run_end":
            status = record.status
    return status


def earlier_name(event_log: Path) -> str | None:
    """The name a run being resumed was started with (its event log's first ``run_start``)."""
    if not event_log.exists():
        return None
    for _, record in read_records(event_log):
        if record.kind == "run_start":
            return record.name or None
    return None
