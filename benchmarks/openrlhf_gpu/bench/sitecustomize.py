"""Timing probe for the side-by-side measurement (loaded in every Python process of the job,
Ray workers included, through PYTHONPATH): per call, the seconds spent in rldk_track's per-step
logging (_Session.log_train, on the trainer's thread) and in OpenRLHF's own TensorBoard logging
(TensorboardLogger.log_train for PPO, SummaryWriter.add_scalar for SFT/DPO); written at exit to
$BENCH_DIR/<pid>.json. Not part of rldk_track."""
import atexit
import functools
import json
import os
import time

_times = {}


def _timed(owner, name, label):
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _times.setdefault(label, []).append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def _dump():
    if _times and os.environ.get("BENCH_DIR"):
        os.makedirs(os.environ["BENCH_DIR"], exist_ok=True)
        with open(os.path.join(os.environ["BENCH_DIR"], f"{os.getpid()}.json"), "w") as f:
            json.dump(_times, f)


if os.environ.get("BENCH_DIR"):
    from rldk_track.integrations import post_import

    post_import.when_imported("rldk_track.integrations.openrlhf",
                              lambda m: _timed(m._Session, "log_train", "rldk_log_train"))
    post_import.when_imported("openrlhf.utils.logging_utils",
                              lambda m: _timed(m.TensorboardLogger, "log_train", "openrlhf_tb_log_train"))
    post_import.when_imported("torch.utils.tensorboard.writer",
                              lambda m: _timed(m.SummaryWriter, "add_scalar", "tb_add_scalar"))
    atexit.register(_dump)
