#!/usr/bin/env bash
# One-off before the web and worker processes start: database migrations and static files.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-webapp.config.settings.production}"
python webapp/manage.py migrate --noinput
exec python webapp/manage.py collectstatic --noinput --verbosity 0
