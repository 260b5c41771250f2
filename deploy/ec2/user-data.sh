#!/usr/bin/env bash
# cloud-init user-data for Ubuntu 22.04: Docker + compose plugin, secrets from SSM Parameter Store
# (through the instance role; nothing secret is in this file), the stack under systemd.
#
# Set ROLE before launching: "all" (single host), "web" (web + beat) or "worker" (workers only).
set -euo pipefail
ROLE="${ROLE:-all}"
PREFIX="${SSM_PREFIX:-/handwritten-arithmetic}"
APP_DIR=/opt/handwritten-arithmetic

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q ca-certificates curl gnupg unzip jq
install -m 0755 -d /etc/apt/keyrings
curl -fsSL https://download.docker.com/linux/ubuntu/gpg | gpg --dearmor -o /etc/apt/keyrings/docker.gpg
echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/ubuntu jammy stable" \
  > /etc/apt/sources.list.d/docker.list
apt-get update -q
apt-get install -y -q docker-ce docker-ce-cli containerd.io docker-compose-plugin
if ! command -v aws >/dev/null; then
  curl -fsSL "https://awscli.amazonaws.com/awscli-exe-linux-$(uname -m).zip" -o /tmp/awscli.zip
  unzip -q /tmp/awscli.zip -d /tmp && /tmp/aws/install
fi

mkdir -p "$APP_DIR"

# At each start: the compose file (kept in SSM as well, so hosts never clone the repository, and
# a change reaches a host on its next restart), and .env from every parameter under the prefix
# (SecureString decrypted by the instance role).
cat > "$APP_DIR/fetch-env.sh" <<'SCRIPT'
#!/usr/bin/env bash
set -euo pipefail
PREFIX="${SSM_PREFIX:-/handwritten-arithmetic}"
aws ssm get-parameter --name "$PREFIX/compose" --query Parameter.Value --output text > /opt/handwritten-arithmetic/docker-compose.yml
umask 077
aws ssm get-parameters-by-path --path "$PREFIX/env" --with-decryption --recursive --output json \
  | jq -r '.Parameters[] | "\(.Name | split("/") | last)=\(.Value)"' > /opt/handwritten-arithmetic/.env
SCRIPT
chmod 0700 "$APP_DIR/fetch-env.sh"

workers="${WORKERS_PER_HOST:-2}"
compose="/usr/bin/docker compose --env-file .env"
# Single host: compose runs Redis and PostgreSQL too. Several hosts: ElastiCache and RDS, so --no-deps.
case "$ROLE" in
  all) migrate="/bin/true"; start="$compose up -d --no-build --scale worker=$workers" ;;
  web) migrate="$compose run --rm --no-deps migrate"; start="$compose up -d --no-build --no-deps web beat" ;;
  worker) migrate="/bin/true"; start="$compose up -d --no-build --no-deps --scale worker=$workers worker" ;;
  *) echo "unknown ROLE $ROLE" >&2; exit 1 ;;
esac

# TimeoutStopSec is longer than JOB_TIME_LIMIT (90 s): a stop lets running jobs finish.
cat > /etc/systemd/system/handwritten-arithmetic.service <<UNIT
[Unit]
Description=Handwritten arithmetic ($ROLE)
After=docker.service network-online.target
Requires=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
WorkingDirectory=$APP_DIR
Environment=SSM_PREFIX=$PREFIX
ExecStartPre=$APP_DIR/fetch-env.sh
ExecStartPre=/bin/sh -c 'aws ecr get-login-password | docker login --username AWS --password-stdin \$(grep ^IMAGE_REGISTRY= .env | cut -d= -f2)'
ExecStartPre=$migrate
ExecStart=$start
ExecStop=$compose stop --timeout 120
TimeoutStartSec=600
TimeoutStopSec=150

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now handwritten-arithmetic.service
