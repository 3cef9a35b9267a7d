#!/usr/bin/env bash
# Start TensorBoard on a log dir, listening on 127.0.0.1 only.
#
#   backends/tensorboard/start.sh [LOGDIR] [PORT] [extra tensorboard flags...]
#
# LOGDIR defaults to ./rldk_runs/tensorboard (where rldk_track writes one folder per run), PORT to
# 6006 (0 lets the OS pick a free port; TensorBoard prints the URL). PYTHON selects the interpreter
# whose tensorboard package runs (default: python3 on PATH). The process is exec'd, so its PID is
# TensorBoard's own: stop it with `kill <pid>` (its data-server child exits with it).
set -euo pipefail

LOGDIR="${1:-./rldk_runs/tensorboard}"
PORT="${2:-6006}"
shift $(( $# < 2 ? $# : 2 ))

mkdir -p "$LOGDIR"
exec "${PYTHON:-python3}" -m tensorboard.main \
    --logdir "$LOGDIR" \
    --host 127.0.0.1 \
    --port "$PORT" \
    --reload_interval "${TB_RELOAD_INTERVAL:-5}" \
    "$@"
