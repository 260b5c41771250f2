#!/usr/bin/env bash
# Docker healthcheck for a worker container: this node's heartbeat row is fresh
# (written every 10 s by the worker itself; see workers/heartbeat.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python webapp/manage.py worker_alive "${WORKER_NAME:-worker}@$(hostname)"
