#!/usr/bin/env bash
# Start an MLflow tracking server for one machine: a sqlite store and a local artifact folder.
#
#   backends/mlflow/serve_local.sh DIR [PORT] [extra `mlflow server` options...]
#
# DIR/mlflow.db holds runs, params, metrics and tags; DIR/mlartifacts holds artifacts, which
# the server proxies (clients upload through HTTP and need no access to DIR). Then log to it:
#
#   export MLFLOW_TRACKING_URI=http://127.0.0.1:PORT      # or init(mlflow={"tracking_uri": ...})
#
# Environment:
#   MLFLOW_HOST     interface to bind (default 127.0.0.1, this machine only). Binding 0.0.0.0
#                   exposes an unauthenticated server: also pass --allowed-hosts (see README.md).
#   MLFLOW_WORKERS  server worker processes (default 1; sqlite serialises writes anyway).
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION
#                   MLflow's GenAI job runner (default here: false; experiment tracking does
#                   not use it, and it costs two extra processes).
#
# The server runs in the foreground (exec), so signals sent to this script reach it; the test
# suite starts its servers through this script (tests/support/rldk_testsupport/mlflow_server.py).
set -euo pipefail

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

dir="$1"
port="${2:-5000}"
shift $(( $# >= 2 ? 2 : 1 ))

mkdir -p "$dir/mlartifacts"
dir="$(cd "$dir" && pwd)"

export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

exec mlflow server \
    --backend-store-uri "sqlite:///$dir/mlflow.db" \
    --artifacts-destination "$dir/mlartifacts" \
    --host "${MLFLOW_HOST:-127.0.0.1}" \
    --port "$port" \
    --workers "${MLFLOW_WORKERS:-1}" \
    "$@"
