#!/usr/bin/env bash
# `make compose-test`: docker-compose.yml end to end. Builds the image, brings up redis, the
# catalogue job (sample catalogue + index), the worker, the web and nginx; searches one
# catalogue design through nginx with curl (rank 1 must be that design, the grid must decode
# as a JPEG; an upload over MAX_UPLOAD_MB must get nginx's 413 as JSON, a collection over
# MAX_CHECK_UPLOAD_MB a page); kills the worker
# process and checks it is restarted, the search it may have held ends, and the next search
# is served; tears everything down (containers, networks, volumes)
# on any exit. Every socket is on 127.0.0.1 (deploy/compose.test.yml: host networking).
#   COMPOSE_TEST_BASE=local (default): base images built from Debian packages
#                                      (deploy/base-images.sh; no image registry needed)
#   COMPOSE_TEST_BASE=registry:        python:3.11-slim, redis:7-alpine, nginx:1.27-alpine
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
DOCKER=${DOCKER:-docker}
PROJECT=pairsearch-test-$$
WORK=$(mktemp -d /tmp/pairsearch-compose-test.XXXXXX)

log() { printf '[compose-test %4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

"$DOCKER" info >/dev/null 2>&1 || fail "no Docker engine answers ($DOCKER info); start dockerd"
if "$DOCKER" compose version >/dev/null 2>&1; then COMPOSE_BIN=("$DOCKER" compose)
elif command -v docker-compose >/dev/null; then COMPOSE_BIN=(docker-compose)
else fail "neither 'docker compose' nor docker-compose is installed"; fi
# docker-compose.yml as it is but for nginx's published port, which host networking refuses
# (an override can add to `ports:` but not remove it)
python3 - "$WORK/docker-compose.yml" <<'PY'
import sys
text = open("docker-compose.yml").read()
published = '    ports:\n      - "127.0.0.1:5000:8080"\n'
assert text.count(published) == 1, "compose-test: nginx's ports: block has changed; update me"
open(sys.argv[1], "w").write(text.replace(published, ""))
PY
COMPOSE=("${COMPOSE_BIN[@]}" -p "$PROJECT" --project-directory . -f "$WORK/docker-compose.yml"
         -f deploy/compose.test.yml)

# BuildKit (for the build secret): a docker CLI from 23 on needs the buildx plugin for it;
# older CLIs (Debian bookworm's docker.io) have it built in.
buildkit_cli() {
  local cli major
  for cli in "$DOCKER" $(type -ap docker); do
    "$cli" buildx version >/dev/null 2>&1 && { echo "$cli"; return; }
    major=$("$cli" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)
    [[ "$major" =~ ^[0-9]+$ ]] && (( major < 23 )) && { echo "$cli"; return; }
  done
  return 1
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if (( rc != 0 )); then
    log "logs of the failed run (last 40 lines a service):"
    "${COMPOSE[@]}" logs --no-color --tail 40 2>&1 | sed 's/^/    /' || true
  fi
  log "tearing down: containers, networks, volumes of $PROJECT"
  "${COMPOSE[@]}" down --volumes --remove-orphans --timeout 10 >"$WORK/down.log" 2>&1 \
    || { cat "$WORK/down.log"; rc=1; }
  left=$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")
  left+=$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
  [[ -z "$left" ]] || { log "FAIL: left behind: $left"; rc=1; }
  rm -rf "$WORK"
  if (( rc == 0 )); then log "PASS in $(( $(date +%s) - START )) s"; else log "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- images -------------------------------------------------------------------------------
if [[ "${COMPOSE_TEST_BASE:-local}" == local ]]; then
  log "base images (built from Debian packages when missing)"
  DOCKER="$DOCKER" deploy/base-images.sh
  export BASE_IMAGE=pairsearch-local/python:bookworm REDIS_IMAGE=pairsearch-local/redis:bookworm \
         NGINX_IMAGE=pairsearch-local/nginx:bookworm
fi
BUILDER=$(buildkit_cli) || fail "no docker CLI here builds with BuildKit (install the buildx plugin)"
secret=()
[[ -n "${PIP_CERT:-}" && -s "${PIP_CERT:-}" ]] && secret=(--secret "id=pip_cert,src=$PIP_CERT")
log "building pairsearch:local (FROM ${BASE_IMAGE:-python:3.11-slim})"
DOCKER_BUILDKIT=1 "$BUILDER" build --network host "${secret[@]}" \
  --build-arg "BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}" -t pairsearch:local . >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log"; fail "image build"; }
for name in redis nginx; do  # pulled by compose only with registry access
  [[ "${COMPOSE_TEST_BASE:-local}" == local ]] || "${COMPOSE[@]}" pull -q "$name"
done

# --- the stack ----------------------------------------------------------------------------
read -r TEST_REDIS_PORT TEST_WEB_PORT TEST_NGINX_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
export TEST_REDIS_PORT TEST_WEB_PORT TEST_NGINX_PORT VGG16_WEIGHTS=bsds500  # offline weights
BASE="http://127.0.0.1:$TEST_NGINX_PORT"
log "up: redis :$TEST_REDIS_PORT, web :$TEST_WEB_PORT, nginx :$TEST_NGINX_PORT (project $PROJECT);"
log "    the catalogue job writes the sample catalogue and indexes it first"
"${COMPOSE[@]}" up -d --no-build >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "compose up"; }
"${COMPOSE[@]}" logs --no-color catalogue | grep -E "wrote|indexed" | sed 's/^/    /'

wait_ready() {  # /readyz through nginx: Redis, a worker's heartbeat, the index, OUTPUT_DIR
  local deadline=$(( $(date +%s) + $1 ))
  until curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; do
    (( $(date +%s) < deadline )) || fail "not ready after $1 s: $(curl -sS "$BASE/readyz" 2>&1)"
    sleep 2
  done
}
wait_ready 300
log "ready: $(curl -fsS "$BASE/healthz")"

for port in "$TEST_REDIS_PORT" "$TEST_WEB_PORT" "$TEST_NGINX_PORT"; do
  addrs=$(ss -ltnH "sport = :$port" | awk '{print $4}' | sort -u | tr '\n' ' ')
  [[ "$addrs" == "127.0.0.1:$port " ]] || fail "port $port listens on: $addrs(want 127.0.0.1 only)"
done
[[ "$("${COMPOSE[@]}" exec -T web id -u)" != 0 ]] || fail "the web runs as root"
log "listening on 127.0.0.1 only; web and worker run as $("${COMPOSE[@]}" exec -T web id -un)"

# --- one search ---------------------------------------------------------------------------
read -r NAME FRONT BACK < <("${COMPOSE[@]}" exec -T web python -c '
import csv; row = list(csv.DictReader(open("database/pairs.csv")))[17]
print(row["name"], row["front"], row["back"])')
[[ -n "$NAME" ]] || fail "could not read database/pairs.csv in the web container"
curl -fsS -o "$WORK/front.png" "$BASE/database/$FRONT"
curl -fsS -o "$WORK/back.png" "$BASE/database/$BACK"

json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
search() {  # search(k): submit the pair, print the id
  curl -fsS -F "front=@$WORK/front.png" -F "back=@$WORK/back.png" -F "k=$1" "$BASE/api/searches" \
    | json 'd["id"]'
}
wait_done() {  # wait_done(id, seconds): print the final status JSON
  local deadline=$(( $(date +%s) + $2 )) answer status
  while :; do
    answer=$(curl -fsS "$BASE/api/searches/$1?wait=10")
    status=$(json 'd["status"]' <<<"$answer")
    [[ "$status" == finished || "$status" == failed ]] && { echo "$answer"; return; }
    (( $(date +%s) < deadline )) || fail "search $1 still $status after $2 s"
  done
}
check_hit() {  # check_hit(status JSON): finished, rank 1 is the query's design
  [[ "$(json 'd["status"]' <<<"$1")" == finished ]] || fail "search failed: $(json 'd.get("error")' <<<"$1")"
  top=$(json '"%s %s %s" % (d["results"][0]["rank"], d["results"][0]["name"], d["results"][0]["verdict"])' <<<"$1")
  [[ "$top" == "1 $NAME "* ]] || fail "rank 1 is not $NAME: $top"
}

log "search: design $NAME ($FRONT, $BACK) through nginx"
ID=$(search 20)
ANSWER=$(wait_done "$ID" 120)
check_hit "$ANSWER"
log "finished: rank 1 = $top, $(json 'len(d["results"])' <<<"$ANSWER") results"
curl -fsS -o "$WORK/grid.jpg" "$BASE/api/searches/$ID/result.jpg"
"$DOCKER" run --rm -i --network none --entrypoint python pairsearch:local -c '
import io, sys
from PIL import Image
data = sys.stdin.buffer.read(); image = Image.open(io.BytesIO(data)); image.load()
assert image.format == "JPEG", image.format
print("    grid: %s %dx%d, %d bytes, decoded" % (image.format, *image.size, len(data)))' \
  <"$WORK/grid.jpg" || fail "the grid does not decode as a JPEG"
# nginx's own refusals are JSON like the app's to the API, pages to a page (nginx/default.conf.template)
head -c $(( (${MAX_UPLOAD_MB:-20} + 1) * 1024 * 1024 )) /dev/zero >"$WORK/big.png"
refused=$(curl -sS -o "$WORK/refused.json" -D "$WORK/refused.head" -w '%{http_code} %{content_type}' \
  -F "front=@$WORK/big.png" "$BASE/api/searches" || true)  # nginx may close before the upload ends
[[ "$refused" == "413 application/json" ]] && json 'd["error"]' <"$WORK/refused.json" \
  | grep -qx too_large || fail "an upload over MAX_UPLOAD_MB: $refused $(head -c 300 "$WORK/refused.json")"
grep -qi '^x-content-type-options: nosniff' "$WORK/refused.head" \
  && grep -qi '^cache-control: private, no-store' "$WORK/refused.head" \
  || fail "nginx's refusal lacks the app's headers: $(cat "$WORK/refused.head")"
log "an upload over MAX_UPLOAD_MB: $refused ($(json 'd["message"]' <"$WORK/refused.json"))"
# to a page's form (a collection dropped on the page at /) the same refusal is a page to read;
# a collection's limit is its own (MAX_CHECK_UPLOAD_MB)
head -c $(( (${MAX_CHECK_UPLOAD_MB:-200} + 1) * 1024 * 1024 )) /dev/zero >"$WORK/big.zip"
refused=$(curl -sS -o "$WORK/refused.html" -w '%{http_code} %{content_type}' \
  -F "collection=@$WORK/big.zip;filename=season.zip" "$BASE/checks" || true)
[[ "$refused" == "413 text/html" ]] && grep -q "The collection is too large" "$WORK/refused.html" \
  || fail "a form's collection over MAX_CHECK_UPLOAD_MB: $refused $(head -c 300 "$WORK/refused.html")"
rm -f "$WORK/big.zip"

# --- the worker dies: restarted, no search left hanging ----------------------------------
WORKER=$("${COMPOSE[@]}" ps -q worker)
ORPHAN=$(search 7)  # another k: not answered from the result cache
"$DOCKER" exec "$WORKER" sh -c 'kill -KILL -1' || true  # every process but docker-init (PID 1)
log "killed the worker process (search $ORPHAN submitted just before)"
ANSWER=$(wait_done "$ORPHAN" 240)
log "that search ended: $(json 'd["status"] + (" (" + str(d.get("error")) + ")" if d["status"] == "failed" else "")' <<<"$ANSWER")"
deadline=$(( $(date +%s) + 60 ))  # the search may have finished before the kill landed
until (( $("$DOCKER" inspect -f '{{.RestartCount}}' "$WORKER") >= 1 )); do
  (( $(date +%s) < deadline )) || fail "the worker container was not restarted"
  sleep 1
done
restarts=$("$DOCKER" inspect -f '{{.RestartCount}}' "$WORKER")
wait_ready 240
ANSWER=$(wait_done "$(search 5)" 120)
check_hit "$ANSWER"
log "worker restarted ($restarts restart); next search: rank 1 = $top"
