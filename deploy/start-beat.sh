#!/usr/bin/env bash
# Celery beat: the periodic sweep (re-enqueue lost jobs) and the retention purge.
# Run exactly ONE beat per deployment. It sends tasks by name, so it needs no worker code.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-webapp.config.settings.production}"
var_dir="${VAR_DIR:-var}"
mkdir -p "$var_dir"
exec celery -A workers.celery_app beat --schedule "$var_dir/celerybeat-schedule" --loglevel "${LOG_LEVEL:-INFO}"
