#!/usr/bin/env bash
# Upload rldk_track's W&B runs that were recorded offline (or that a crash left incomplete).
#
#   backends/wandb/sync.sh [DIR] [extra `wandb sync` options...]
#
# DIR is the rldk_track run directory (default: $RLDK_TRACK_DIR, else ./rldk_runs).
#   1. `rldk-track sync DIR --to wandb`, offline: every run under DIR gets a complete W&B run
#      file from its event log -- what a crash cut off is delivered again and the run is ended
#      as the event log says (killed after a crash); runs logged with backend="jsonl" only get
#      their W&B run here. Running it again adds nothing.
#   2. `wandb sync` uploads every offline run directory under $WANDB_DIR/wandb (default
#      DIR/wandb); the segments of a resumed run go up in start order, into one W&B run.
# Step 2 needs W&B credentials (`wandb login`, or WANDB_API_KEY) and, for W&B Server,
# WANDB_BASE_URL. Extra options go to `wandb sync`, e.g. --dry-run, -p PROJECT, -e ENTITY,
# --include-synced. Environment: PYTHON (default python3) runs rldk-track and wandb.
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

dir="${RLDK_TRACK_DIR:-./rldk_runs}"
if [[ $# -ge 1 && "$1" != -* ]]; then
    dir="$1"
    shift
fi
python="${PYTHON:-python3}"
wandb_root="${WANDB_DIR:-$dir}/wandb"

WANDB_MODE=offline "$python" -m rldk_track.cli sync "$dir" --to wandb

shopt -s nullglob
runs=("$wandb_root"/offline-run-*)
if [[ ${#runs[@]} -eq 0 ]]; then
    echo "no offline W&B runs under $wandb_root" >&2
    exit 1
fi
exec "$python" -m wandb sync "$@" "${runs[@]}"
