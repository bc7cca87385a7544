# Sourced by tools/run-tests and tools/with-minio: start a real MinIO server on a free
# 127.0.0.1 port with a temporary data directory, and stop it again.
#   MINIO_BIN   the server binary (built by `make deps-minio`)
# Exports S3SINK_TEST_ENDPOINT, S3SINK_TEST_ACCESS_KEY, S3SINK_TEST_SECRET_KEY, and
# S3SINK_TEST_KMS_KEY: the name of the server's one KMS key (a static key, made up at each
# start), so SSE-S3 and SSE-KMS work; objects are encrypted only when a request asks.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_minio() {
  : "${MINIO_BIN:?set MINIO_BIN to the MinIO binary (make deps-minio builds it)}"
  MINIO_DATA=$(mktemp -d "${TMPDIR:-/tmp}/s3sink-minio.XXXXXX")
  local port console
  port=$(free_port); console=$(free_port)
  export S3SINK_TEST_ACCESS_KEY=s3sinktest S3SINK_TEST_SECRET_KEY=s3sinktest-secret
  export S3SINK_TEST_ENDPOINT="http://127.0.0.1:$port"
  export S3SINK_TEST_KMS_KEY=s3sink-test-key
  local kms_key
  kms_key=$(head -c 32 /dev/urandom | base64)
  MINIO_ROOT_USER=$S3SINK_TEST_ACCESS_KEY MINIO_ROOT_PASSWORD=$S3SINK_TEST_SECRET_KEY \
    MINIO_KMS_SECRET_KEY="$S3SINK_TEST_KMS_KEY:$kms_key" \
    MINIO_BROWSER=off MINIO_UPDATE=off \
    "$MINIO_BIN" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$console" \
    "$MINIO_DATA/data" >"$MINIO_DATA/minio.log" 2>&1 &
  MINIO_PID=$!
  for _ in $(seq 1 300); do
    if curl -fs "$S3SINK_TEST_ENDPOINT/minio/health/ready" >/dev/null 2>&1; then return 0; fi
    kill -0 "$MINIO_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "MinIO did not start; its log:" >&2
  cat "$MINIO_DATA/minio.log" >&2
  return 1
}

stop_minio() {
  if [ -n "${MINIO_PID:-}" ]; then
    kill "$MINIO_PID" 2>/dev/null
    wait "$MINIO_PID" 2>/dev/null
    MINIO_PID=
  fi
  [ -n "${MINIO_DATA:-}" ] && rm -rf "$MINIO_DATA"
  MINIO_DATA=
}
