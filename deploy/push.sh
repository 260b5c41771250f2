#!/usr/bin/env bash
# Build both images and push them to ECR under one pinned tag (default: the git commit).
# Hosts pull this tag; they never clone or build.
#   AWS_REGION=eu-west-1 AWS_ACCOUNT_ID=123456789012 deploy/push.sh [TAG]
set -euo pipefail
cd "$(dirname "$0")/.."
region="${AWS_REGION:?set AWS_REGION}"
account="${AWS_ACCOUNT_ID:?set AWS_ACCOUNT_ID}"
tag="${1:-$(git rev-parse --short=12 HEAD)}"
if [ -n "$(git status --porcelain)" ] && [ -z "${1:-}" ]; then
  echo "the work tree has changes: commit them, or pass an explicit tag" >&2
  exit 1
fi
registry="$account.dkr.ecr.$region.amazonaws.com"
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
for image in web worker; do
  repository="handwritten-arithmetic-$image"
  aws ecr describe-repositories --region "$region" --repository-names "$repository" >/dev/null 2>&1 \
    || aws ecr create-repository --region "$region" --repository-name "$repository" --image-tag-mutability IMMUTABLE >/dev/null
  # The hosts are x86-64 (c6i): say so, or a build on an ARM laptop pushes images they cannot run.
  docker build --platform linux/amd64 --file "Dockerfile.$image" --tag "$registry/$repository:$tag" .
  docker push "$registry/$repository:$tag"
done
echo "pushed $registry/handwritten-arithmetic-{web,worker}:$tag"
echo "on each host: set IMAGE_TAG=$tag in SSM (/handwritten-arithmetic/IMAGE_TAG) and run: sudo systemctl restart handwritten-arithmetic"
