#!/usr/bin/env bash
# List the W&B runs stored on this machine (read from their .wandb run files, no server):
# run id, project, name, segments (one per resume), history rows, exit code, and whether
# `wandb sync` has uploaded them.
#
#   backends/wandb/status.sh [DIR]      # DIR: rldk_track run directory or WANDB_DIR
#
# Environment: PYTHON (default python3).
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
exec "${PYTHON:-python3}" -m rldk_track.backends.wandb_offline "${1:-${WANDB_DIR:-${RLDK_TRACK_DIR:-./rldk_runs}}}"
