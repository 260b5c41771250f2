#!/usr/bin/env bash
# Docker healthcheck for a worker container: this host's Celery worker answers a ping.
set -euo pipefail
cd "$(dirname "$0")/.."
exec celery -A workers.celery_app inspect ping --timeout 5 --destination "${WORKER_NAME:-worker}@$(hostname)"
