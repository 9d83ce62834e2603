#!/usr/bin/env bash
# Build and smoke-test the indexer's container image.
#
#   deploy/image.sh build   build $IMAGE from the repo's Dockerfile
#   deploy/image.sh test    run the smoke test inside the built image
#   deploy/image.sh base    build a local Python base image from Debian (no registry needed)
#
# Engine: Docker when its daemon answers, else podman + buildah (rootful, chroot
# isolation: works inside containers that forbid `podman run`). Override with
# ENGINE=docker|podman.
#
# Base image: $PYTHON_IMAGE (default python:3.11-slim). With podman, when that image
# is not in local storage and cannot be pulled, a bookworm + python3 base is built
# once with debootstrap and used instead ($LOCAL_BASE).
#
# pip in the build stage trusts $CA_BUNDLE (default: $PIP_CERT) when set, for networks
# that intercept TLS; it is passed as a build secret and stays out of the image.
#
# The smoke test runs, inside the image and as its non-root user:
#   audifi-indexer --help
#   audifi-indexer migrate up / migrate status   against a scratch database on the host's PostgreSQL
#   audifi-indexer backfill / status              against a host anvil with a seeded workload
#   audifi-indexer run                            /healthz, /readyz, /metrics from the host, the
#                                                 image's HEALTHCHECK inside it, SIGTERM -> exit 0
# The scratch database and anvil are removed/stopped on exit, pass or fail.
set -euo pipefail
shopt -s extglob

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-localhost/audifi-indexer:dev}
PYTHON_IMAGE=${PYTHON_IMAGE:-}
DEFAULT_PYTHON_IMAGE=docker.io/library/python:3.11-slim
LOCAL_BASE=${LOCAL_BASE:-localhost/audifi-python-base:bookworm}
CA_BUNDLE=${CA_BUNDLE:-${PIP_CERT:-}}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}

say() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'image.sh: %s\n' "$*" >&2; exit 1; }

engine() {
    if [[ -n ${ENGINE:-} ]]; then
        echo "$ENGINE"
    elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        echo docker
    elif command -v podman >/dev/null 2>&1; then
        echo podman
    else
        die "no container engine: install Docker, or podman + buildah (deploy/tools.sh image)"
    fi
}

# --- base image -------------------------------------------------------------

build_local_base() {
    command -v debootstrap >/dev/null || die "debootstrap is missing (deploy/tools.sh image)"
    [[ $(id -u) == 0 ]] || die "building the local base image needs root (debootstrap)"
    local root
    root=$(mktemp -d /var/tmp/audifi-base.XXXXXX)
    say "debootstrap bookworm + python3 into $root (a few minutes)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$root" "$DEBIAN_MIRROR" >/var/tmp/audifi-base-debootstrap.log 2>&1 \
        || { tail -20 /var/tmp/audifi-base-debootstrap.log >&2; rm -rf "$root"; die "debootstrap failed"; }
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    say "importing it as $LOCAL_BASE"
    tar -C "$root" -c . | podman import --change 'CMD ["python3"]' - "$LOCAL_BASE" >/dev/null
    rm -rf "$root"
}

resolve_base() {
    if [[ -n $PYTHON_IMAGE ]]; then
        echo "$PYTHON_IMAGE"
        return
    fi
    if [[ $(engine) == docker ]]; then
        echo "$DEFAULT_PYTHON_IMAGE"
        return
    fi
    if podman image exists "$DEFAULT_PYTHON_IMAGE" \
        || timeout 60 podman pull -q "$DEFAULT_PYTHON_IMAGE" >/dev/null 2>&1; then
        echo "$DEFAULT_PYTHON_IMAGE"
        return
    fi
    say "$DEFAULT_PYTHON_IMAGE cannot be pulled here; using the local Debian base $LOCAL_BASE"
    podman image exists "$LOCAL_BASE" || build_local_base
    echo "$LOCAL_BASE"
}

cmd_base() {
    [[ $(engine) == podman ]] || die "the local base is for podman; Docker pulls $DEFAULT_PYTHON_IMAGE"
    build_local_base
}

# --- build ------------------------------------------------------------------

cmd_build() {
    local eng base
    eng=$(engine)
    base=$(resolve_base)
    local -a args=(--build-arg "PYTHON_IMAGE=$base" -t "$IMAGE" -f "$REPO/Dockerfile")
    # Behind a TLS-intercepting proxy pip needs its CA: the same bundle pip uses here.
    if [[ -n $CA_BUNDLE ]]; then
        [[ -s $CA_BUNDLE ]] || die "CA bundle $CA_BUNDLE is missing or empty"
        args+=(--secret "id=pip_ca,src=$CA_BUNDLE")
    fi
    say "building $IMAGE with $eng from $base${CA_BUNDLE:+ (pip CA: $CA_BUNDLE)}"
    if [[ $eng == docker ]]; then
        docker build "${args[@]}" "$REPO"
    else
        # --format docker keeps HEALTHCHECK (the OCI image format has no field for it).
        podman build --isolation=chroot --format docker --pull=never "${args[@]}" "$REPO"
    fi
    say "built $IMAGE"
}

# --- smoke test -------------------------------------------------------------

COUNT_SQL="select 'checkpoint=' || coalesce((select max(block_number)::text from indexer_checkpoints), 'none')
    || ' blocks=' || (select count(*) from indexer_blocks)
    || ' nft_transfers=' || (select count(*) from nft_transfers)
    || ' token_transfers=' || (select count(*) from token_transfers)
    || ' quarantined=' || (select count(*) from indexer_quarantine)"

CTR=""
SCRATCH_DB=""
ANVIL_PID=""
DAEMON_PID=""
WORKDIR=""

cleanup() {
    local rc=$?
    if [[ -n $CTR ]]; then
        buildah rm "$CTR" >/dev/null 2>&1 || true
    fi
    if [[ -n $DAEMON_PID ]]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    if [[ -n $ANVIL_PID ]]; then
        kill "$ANVIL_PID" 2>/dev/null || true
        wait "$ANVIL_PID" 2>/dev/null || true
    fi
    if [[ -n $SCRATCH_DB ]]; then
        dropdb --if-exists --force "$SCRATCH_DB" 2>/dev/null || true
    fi
    if [[ -n $WORKDIR ]]; then
        rm -rf "$WORKDIR"
    fi
    exit "$rc"
}

# Run one command inside the image, as the image's user, on the host network,
# with the image's entrypoint replaced by the command given.
in_image() {
    local -a envs=()
    local kv
    for kv in "${SMOKE_ENV[@]}"; do
        envs+=(-e "$kv")
    done
    printf '\n$ %s\n' "$*" >&2
    if [[ $(engine) == docker ]]; then
        docker run --rm --network host ${DOCKER_NAME:+--name "$DOCKER_NAME"} "${envs[@]}" \
            --entrypoint "$1" "$IMAGE" "${@:2}"
    else
        buildah run --isolation=chroot --network host "${envs[@]}" "$CTR" -- "$@"
    fi
}

wait_for_rpc() {
    local url=$1 deadline=$((SECONDS + 30))
    until curl -sf -X POST -H 'content-type: application/json' \
        --data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$url" >/dev/null; do
        ((SECONDS < deadline)) || die "anvil did not answer at $url within 30 s"
        sleep 0.2
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Deploys the factory and a small seeded workload on the host anvil with the dev-chain
# toolkit (indexer.devchain, host venv); prints "FACTORY FACTORY_BLOCK LAST_BLOCK EVENTS".
stage_chain() {
    "$HOST_PY" - "$1" <<'PY'
import sys

from indexer.devchain.contracts import hex_address
from indexer.devchain.rpc import RpcClient
from indexer.devchain.workload import Workload, WorkloadConfig

with RpcClient(sys.argv[1]) as rpc:
    summary = Workload(rpc, WorkloadConfig(seed=7, masters=3, artists=3)).run(events=400)
print(f"workload: {summary.events} events in {summary.txs} txs, blocks "
      f"{summary.first_block}..{summary.last_block}: {summary.counts}", file=sys.stderr)
print(hex_address(summary.factory), summary.factory_block, summary.last_block, summary.events)
PY
}

# anvil as the dev-chain toolkit starts it (indexer.devchain.anvil.start_anvil, no_mining).
start_anvil() {
    local port=$1 anvil chain_id gas_limit
    # The native binary, not node_modules/.bin/anvil (a node wrapper whose child outlives a kill).
    read -r anvil chain_id gas_limit < <("$HOST_PY" -c 'from indexer.devchain.anvil import *
print(anvil_binary(), DEFAULT_CHAIN_ID, DEFAULT_BLOCK_GAS_LIMIT)')
    "$anvil" --accounts=10 --chain-id="$chain_id" --gas-limit="$gas_limit" --order=fifo \
        --no-mining --host=127.0.0.1 --port="$port" >"$WORKDIR/anvil.log" 2>&1 &
    ANVIL_PID=$!
}

descendants() {
    local child
    for child in $(pgrep -P "$1" || true); do
        echo "$child"
        descendants "$child"
    done
}

http_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true
}

# `audifi-indexer run` in the image: /healthz, /readyz and /metrics reached from the host on
# 0.0.0.0, the image's own HEALTHCHECK command run inside it, then SIGTERM -> clean exit 0.
run_daemon() {
    say "audifi-indexer run: health endpoints, HEALTHCHECK, metrics, SIGTERM"
    local port base deadline pid code
    port=$(free_port)
    base="http://127.0.0.1:$port"
    SMOKE_ENV+=("AUDIFI_METRICS_PORT=$port")
    DOCKER_NAME="audifi-smoke-$$" in_image audifi-indexer run >"$WORKDIR/run.log" 2>&1 &
    DAEMON_PID=$!
    deadline=$((SECONDS + 60))
    until [[ $(http_code "$base/readyz") == 200 ]]; do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null || ((SECONDS > deadline)); then
            tail -20 "$WORKDIR/run.log" >&2
            die "the daemon did not become ready on $base/readyz within 60 s"
        fi
        sleep 0.5
    done
    printf '  /healthz %s  /readyz %s\n' "$(http_code "$base/healthz")" "$(http_code "$base/readyz")"
    curl -s "$base/metrics" | grep -E '^audifi_indexer_(lag_blocks|indexed_block|chain_head_block|ready|build_info)' \
        | sed 's/^/  metrics: /'
    local -a check
    mapfile -t check < <("$(engine)" image inspect "$IMAGE" | python3 -c \
        'import json, sys; i = json.load(sys.stdin)[0]  # podman: top level; docker: under Config
print(*(i.get("Healthcheck") or i["Config"]["Healthcheck"])["Test"][1:], sep="\n")')
    ((${#check[@]} > 1)) || die "the image has no HEALTHCHECK"
    in_image "${check[@]}" && echo "  image HEALTHCHECK: exit 0" || die "the image's HEALTHCHECK failed"
    if [[ $(engine) == docker ]]; then
        docker kill --signal TERM "audifi-smoke-$$" >/dev/null
    else
        # buildah does not forward signals: send SIGTERM to the indexer process itself.
        for pid in $(descendants "$DAEMON_PID"); do
            # comm is the script's name (shebang) or python*; buildah's helpers are not.
            if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == @(audifi-indexer|python*) ]] \
                && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'bin/audifi-indexer run'; then
                echo "  SIGTERM to pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
                kill -TERM "$pid"
            fi
        done
    fi
    deadline=$((SECONDS + 30))
    while kill -0 "$DAEMON_PID" 2>/dev/null; do
        ((SECONDS < deadline)) || { tail -5 "$WORKDIR/run.log" >&2; die "the daemon did not stop within 30 s of SIGTERM"; }
        sleep 0.2
    done
    wait "$DAEMON_PID" && code=0 || code=$?
    DAEMON_PID=""
    grep -E '"event": "(started|step|stopped)"' "$WORKDIR/run.log" | tail -4 | cut -c1-200 | sed 's/^/  run log: /' || true
    ((code == 0)) || { tail -20 "$WORKDIR/run.log" >&2; die "the daemon exited $code after SIGTERM"; }
    echo "  stopped on SIGTERM with exit 0"
}

cmd_test() {
    trap cleanup EXIT
    local eng
    eng=$(engine)
    if [[ $eng == podman ]]; then
        command -v buildah >/dev/null || die "buildah is missing (deploy/tools.sh image)"
        podman image exists "$IMAGE" || die "$IMAGE is not built: run deploy/image.sh build"
        CTR=$(buildah from --pull=never "$IMAGE")
    fi
    WORKDIR=$(mktemp -d)
    SMOKE_ENV=(AUDIFI_LOG_FORMAT=json)

    say "image identity"
    in_image sh -c 'echo "uid=$(id -u) gid=$(id -g) python=$(python3 --version 2>&1) migrations=$AUDIFI_MIGRATIONS_DIR metrics=$AUDIFI_METRICS_HOST:$AUDIFI_METRICS_PORT"'
    [[ $(in_image id -u) != 0 ]] || die "the image runs as root"
    in_image sh -c 'for t in gcc cc make pip pip3; do if command -v $t; then exit 1; fi; done; echo "no compiler, make or pip: ok"' \
        || die "build tools or pip are present in the final image"
    in_image sh -c 'echo "$(ls "$AUDIFI_MIGRATIONS_DIR" | grep -c "\.up\.sql$") up-migrations in $AUDIFI_MIGRATIONS_DIR"'

    say "audifi-indexer --help"
    in_image audifi-indexer --help

    SCRATCH_DB="audifi_image_smoke_$$"
    say "migrate up against scratch database $SCRATCH_DB on $PGHOST:$PGPORT"
    createdb "$SCRATCH_DB"
    SMOKE_ENV+=("AUDIFI_DATABASE_URL=postgresql://$PGUSER@$PGHOST:$PGPORT/$SCRATCH_DB")
    in_image audifi-indexer migrate up
    in_image audifi-indexer migrate status
    printf '  host psql: %s tables in public\n' \
        "$(psql -X -A -t -d "$SCRATCH_DB" -c "select count(*) from pg_tables where schemaname = 'public'")"

    say "backfill against a host anvil"
    [[ -x $HOST_PY ]] || die "the host venv is missing at $HOST_PY (make install)"
    local port rpc factory factory_block last events
    port=$(free_port)
    rpc="http://127.0.0.1:$port"
    start_anvil "$port"
    wait_for_rpc "$rpc"
    read -r factory factory_block last events < <(stage_chain "$rpc")
    [[ -n ${events:-} ]] || die "staging the dev chain failed"
    SMOKE_ENV+=("AUDIFI_RPC_URL=$rpc" "AUDIFI_FACTORY_ADDRESS=$factory" "AUDIFI_START_BLOCK=$factory_block")
    in_image audifi-indexer backfill --from-block "$factory_block" --to-block "$last"
    in_image audifi-indexer status
    local stored
    stored=$(psql -X -A -t -d "$SCRATCH_DB" -c "$COUNT_SQL")
    printf '  host psql: %s\n' "$stored"
    [[ $stored =~ nft_transfers=([0-9]+)\ token_transfers=([0-9]+) ]] \
        && ((BASH_REMATCH[1] > 0 && BASH_REMATCH[2] > 0)) \
        || die "the backfill stored no transfers"
    run_daemon
    say "smoke test passed"
}

case ${1:-} in
    build) cmd_build ;;
    test) cmd_test ;;
    base) cmd_base ;;
    *) die "usage: deploy/image.sh build|test|base" ;;
esac
