#!/usr/bin/env bash
# The web process: gunicorn serving Django; whitenoise serves the static files.
# Used by `make run` and by Dockerfile.web. Settings and hosts come from the environment.
# Idle keep-alive connections are held 75 s, longer than the ALB's 60 s idle timeout (AWS's
# advice for ALB 502s): with gunicorn's default of 2 s, a connection it closes just as the ALB
# reuses it fails that request with a 502; the load benchmark met the same race on loopback as
# a reset. gthread workers keep idle connections in their poller, not in a thread.
# The access log blanks out step picture links' signatures (a credential for the picture,
# until it expires); the rest of each line is gunicorn's usual format.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-webapp.config.settings.production}"
# Prometheus metrics from every gunicorn worker process, merged at /metrics.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${VAR_DIR:-var}/prometheus}"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
exec gunicorn webapp.config.wsgi:application \
  --bind "${BIND:-0.0.0.0:${PORT:-8000}}" \
  --worker-class gthread --workers "${WEB_CONCURRENCY:-2}" --threads "${WEB_THREADS:-16}" \
  --timeout "${WEB_TIMEOUT:-30}" --graceful-timeout 20 --keep-alive "${WEB_KEEPALIVE:-75}" \
  --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" \
  --no-control-socket --access-logfile - --error-logfile - \
  --logger-class webapp.config.gunicorn_logging.RedactingLogger
