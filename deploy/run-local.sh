#!/usr/bin/env bash
# `make run`: the whole stack on this machine - migrations, gunicorn, one worker and beat -
# then a demo user, the URL and that user's API token. Ctrl-C stops everything.
# With no DATABASE_URL / CELERY_BROKER_URL / CACHE_URL set it needs no servers at all:
# SQLite, a filesystem broker and a file cache, all under var/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-webapp.config.settings.local}"
export VAR_DIR="${VAR_DIR:-$PWD/var}"
port="${PORT:-8000}"
demo_user="${DEMO_USER:-demo}"
demo_password="${DEMO_PASSWORD:-demo-password}"
mkdir -p "$VAR_DIR"

deploy/migrate.sh
# The demo user (with its known password) only in the embedded database, or when asked for by
# name: pointed at a real database, `make run` must not create it there, nor reset the
# password of a real user who happens to be called "demo".
if [[ -z "${DATABASE_URL:-}" || -n "${DEMO_USER:-}" ]]; then
  token="$(python webapp/manage.py issue_token "$demo_user" --create --password "$demo_password")"
  login="Log in as:  $demo_user / $demo_password
  API token:  $token"
  try_token="$token"
else
  login="DATABASE_URL is set, so no demo user was made: log in as one of its users, or make one
  with  python webapp/manage.py issue_token NAME --create --password PASSWORD  (or set DEMO_USER)"
  try_token="<your token>"
fi

pids=()
# Each service in its own process group: Ctrl-C (or a signal to this script's group) reaches
# only this script, which stops each service through its main process. A Celery pool child
# that gets the signal directly can die holding the pool's queue lock and hang the worker.
set -m
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM
deploy/start-worker.sh & pids+=($!)
deploy/start-beat.sh & pids+=($!)
BIND="127.0.0.1:$port" WEB_CONCURRENCY="${WEB_CONCURRENCY:-1}" deploy/start-web.sh & pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
cat <<INFO

  Handwritten arithmetic is running at http://127.0.0.1:$port/
  API docs:   http://127.0.0.1:$port/api/docs/
  $login

  Try:  curl -H "Authorization: Token $try_token" -F image=@docs/examples/line.png http://127.0.0.1:$port/api/v1/jobs/

INFO
# Stop everything when any one process stops.
wait -n
