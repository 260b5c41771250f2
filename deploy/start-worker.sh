#!/usr/bin/env bash
# A Celery worker: reads jobs from the `inference` queue (and housekeeping from `maintenance`).
# Scale out by running more of these; each child process loads the model once, as it starts (on a thread).
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-webapp.config.settings.production}"
export TF_NUM_THREADS="${TF_NUM_THREADS:-1}"
export WORKER_CONCURRENCY="${WORKER_CONCURRENCY:-1}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec celery -A workers.tasks worker \
  --queues "${WORKER_QUEUES:-inference,maintenance}" \
  --concurrency "$WORKER_CONCURRENCY" --pool prefork \
  --hostname "${WORKER_NAME:-worker}@%h" \
  --loglevel "${LOG_LEVEL:-INFO}"
