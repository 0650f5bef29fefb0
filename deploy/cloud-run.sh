#!/usr/bin/env bash
# Deploy spot to Cloud Run as one fleet on one Cloud SQL for PostgreSQL
# instance: one service per shard (spot-shard-0 … spot-shard-N-1, each with
# SHARD_INDEX/SHARD_COUNT: the feed and the writer of its share of the
# products) and, with REPLICAS_MAX > 0, one autoscaled service of stream-only
# replicas (spot-replica, ROLE=replica: no feed, no writer). Every service
# serves every product; put the replicas' URL (or a load balancer over all
# of them) in front of browsers. The image is the repository's Dockerfile
# (`make build` inside), built by Cloud Build with BuildKit
# (deploy/cloudbuild.yaml).
#
#   PROJECT=my-proj REGION=us-central1 SQL_INSTANCE=my-proj:us-central1:spot \
#   SHARD_COUNT=3 REPLICAS_MAX=10 deploy/cloud-run.sh
#
# Secrets (Secret Manager, created beforehand; the names can be changed):
#   spot-database-url     postgresql://USER:PASS@/DB?host=/cloudsql/<SQL_INSTANCE>
#   spot-admin-token      optional: enables /admin/* (component swaps)
#   spot-coinbase-key     optional: CDP key name   } both or neither;
#   spot-coinbase-secret  optional: CDP private key } subscribes then carry JWTs
#
# DRY_RUN=1 prints the commands instead of running them.
set -euo pipefail

: "${PROJECT:?set PROJECT}"
: "${REGION:?set REGION}"
: "${SQL_INSTANCE:?set SQL_INSTANCE (project:region:instance)}"
SHARD_COUNT=${SHARD_COUNT:-1}
REPOSITORY=${REPOSITORY:-spot}
SERVICE_PREFIX=${SERVICE_PREFIX:-spot-shard}
TAG=${TAG:-$(git -C "$(dirname "$0")/.." rev-parse --short HEAD)}
IMAGE="${REGION}-docker.pkg.dev/${PROJECT}/${REPOSITORY}/spot:${TAG}"
DB_SECRET=${DB_SECRET:-spot-database-url}
ADMIN_SECRET=${ADMIN_SECRET:-spot-admin-token}
KEY_SECRET=${KEY_SECRET:-spot-coinbase-key}
PRIVATE_KEY_SECRET=${PRIVATE_KEY_SECRET:-spot-coinbase-secret}
# Two UTC days of every minute of 900 products hold ~1.3 GB (make bench,
# history); a swap builds the new component beside the old one. Each shard
# holds its share of the products: lower it with more shards.
MEMORY=${MEMORY:-4Gi}
# Stream-only replicas: 0 deploys none. They hold no candles of their own
# (the streams' current state only), so they are small.
REPLICAS_MIN=${REPLICAS_MIN:-1}
REPLICAS_MAX=${REPLICAS_MAX:-0}
REPLICA_MEMORY=${REPLICA_MEMORY:-1Gi}
REPLICA_SERVICE=${REPLICA_SERVICE:-spot-replica}

run() {
  echo "+ $*"
  if [ -z "${DRY_RUN:-}" ]; then "$@"; fi
}

secret_exists() {
  [ -n "${DRY_RUN:-}" ] || gcloud secrets describe "$1" --project "$PROJECT" >/dev/null 2>&1
}

if ! [[ "$SHARD_COUNT" =~ ^[1-9][0-9]*$ ]]; then
  echo "SHARD_COUNT must be a positive integer" >&2
  exit 2
fi
if ! [[ "$REPLICAS_MAX" =~ ^[0-9]+$ && "$REPLICAS_MIN" =~ ^[0-9]+$ ]] || ((REPLICAS_MAX > 0 && REPLICAS_MIN > REPLICAS_MAX)); then
  echo "REPLICAS_MIN and REPLICAS_MAX must be integers, REPLICAS_MIN <= REPLICAS_MAX" >&2
  exit 2
fi

cd "$(dirname "$0")/.."
run gcloud builds submit --project "$PROJECT" --region "$REGION" \
  --config deploy/cloudbuild.yaml --substitutions "_IMAGE=${IMAGE}" .

secrets="DATABASE_URL=${DB_SECRET}:latest"
if secret_exists "$ADMIN_SECRET"; then secrets+=",ADMIN_TOKEN=${ADMIN_SECRET}:latest"; fi
# A replica talks to no exchange: it gets no Coinbase key.
replica_secrets="$secrets"
if secret_exists "$KEY_SECRET" && secret_exists "$PRIVATE_KEY_SECRET"; then
  secrets+=",COINBASE_API_KEY=${KEY_SECRET}:latest,COINBASE_PRIVATE_KEY=${PRIVATE_KEY_SECRET}:latest"
fi

for ((i = 0; i < SHARD_COUNT; i++)); do
  # One instance per shard: the feed holds WebSockets and the engine the open
  # buckets, so CPU stays allocated (--no-cpu-throttling) and the instance is
  # never scaled to zero or doubled. SSE streams are long requests (timeout
  # 3600 s); Cloud Run sends SIGTERM and waits 10 s, which the drain respects.
  run gcloud run deploy "${SERVICE_PREFIX}-${i}" \
    --project "$PROJECT" --region "$REGION" \
    --image "$IMAGE" \
    --port 8080 \
    --min-instances 1 --max-instances 1 \
    --no-cpu-throttling \
    --cpu 2 --memory "$MEMORY" \
    --concurrency 1000 \
    --timeout 3600 \
    --add-cloudsql-instances "$SQL_INSTANCE" \
    --set-env-vars "SHARD_INDEX=${i},SHARD_COUNT=${SHARD_COUNT},LOG_FORMAT=json" \
    --set-secrets "$secrets" \
    --startup-probe "httpGet.path=/readyz,periodSeconds=5,failureThreshold=60" \
    --liveness-probe "httpGet.path=/healthz,periodSeconds=10" \
    --allow-unauthenticated
done

if ((REPLICAS_MAX > 0)); then
  # Replicas scale with the number of SSE clients (1000 streams each). Their
  # listener holds a LISTEN connection and follows the fleet between
  # requests, so CPU stays allocated; they start in a second (nothing to
  # restore), and the load balancer spreads new streams over them.
  run gcloud run deploy "$REPLICA_SERVICE" \
    --project "$PROJECT" --region "$REGION" \
    --image "$IMAGE" \
    --port 8080 \
    --min-instances "$REPLICAS_MIN" --max-instances "$REPLICAS_MAX" \
    --no-cpu-throttling \
    --cpu 1 --memory "$REPLICA_MEMORY" \
    --concurrency 1000 \
    --timeout 3600 \
    --add-cloudsql-instances "$SQL_INSTANCE" \
    --set-env-vars "ROLE=replica,LOG_FORMAT=json" \
    --set-secrets "$replica_secrets" \
    --startup-probe "httpGet.path=/readyz,periodSeconds=2,failureThreshold=30" \
    --liveness-probe "httpGet.path=/healthz,periodSeconds=10" \
    --allow-unauthenticated
fi
