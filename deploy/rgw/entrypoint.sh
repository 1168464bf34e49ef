#!/usr/bin/env bash
# Entry point of the deploy/rgw image: a single-host Ceph cluster (one mon, one bluestore
# OSD on a file, radosgw) that keeps its data in CEPH_DATA across restarts.
#
#   entrypoint.sh          create the cluster on the first start (only then), start the
#                          daemons, make sure the S3 user and bucket exist, then supervise:
#                          SIGTERM stops radosgw, the OSD and the mon in that order; if any
#                          of them exits, the others are stopped and the script exits 1
#   entrypoint.sh health   exit 0 once the gateway is ready and answers (the health check)
#
# Settings (environment):
#   CEPH_DATA              persistent directory (the volume)        /var/lib/ceph-rgw
#   CEPH_RUN_DIR           sockets and the ready mark (not kept)    /run/ceph-rgw
#   RGW_ADDRESS, RGW_PORT  where the S3 gateway listens             0.0.0.0, 7480
#   CEPH_MON_PORT          mon port on 127.0.0.1, fixed at creation 6789
#   CEPH_STORE_GIB         size of the OSD's block file, fixed at creation; it grows as
#                          data arrives, and must fit in the volume's free space      20
#   CEPH_OSD_MEMORY_MIB    the OSD's memory target                  1024
#   RGW_ACCESS_KEY, RGW_SECRET_KEY   S3 credentials of the user `bindle` (required)
#   RGW_BUCKET             bucket created (if missing) at every start (optional)
#   CEPH_START_TIMEOUT     seconds to wait for the gateway           120
#
# The mon listens on loopback only and the cluster runs without cephx: the S3 port is the
# only way in, and it checks the S3 credentials.

# FSID, MON_PORT, BLOCK_BYTES and OSD_ID are read from cluster.env, written at creation.
# shellcheck disable=SC2153
set -euo pipefail

DATA=${CEPH_DATA:-/var/lib/ceph-rgw}
RUN=${CEPH_RUN_DIR:-/run/ceph-rgw}
RGW_ADDRESS=${RGW_ADDRESS:-0.0.0.0}
RGW_PORT=${RGW_PORT:-7480}
START_TIMEOUT=${CEPH_START_TIMEOUT:-120}
CLUSTER=$DATA/ceph
CONF=$RUN/ceph.conf
RGW_USER=bindle

log() {
    echo "ceph-rgw: $*" >&2
}

health() {
    [ -e "$RUN/ready" ] || exit 1
    exec curl -fsS -o /dev/null --max-time 4 "http://127.0.0.1:$RGW_PORT/"
}

ceph_client() {
    # A deadline on every client call, so a cluster that never forms cannot hang us.
    timeout 60 "$@" -c "$CONF"
}

# Daemons drop root for the `ceph` user where the packages created it.
run_as=()
if [ "$(id -u)" = 0 ] && id ceph >/dev/null 2>&1; then
    run_as=(--setuser ceph --setgroup ceph)
fi

own() {
    [ ${#run_as[@]} -eq 0 ] || chown -R ceph:ceph "$@"
}

# The configuration is written at every start from the settings fixed at creation
# (cluster.env) and the current environment, so moving the gateway's port needs no rebuild.
write_conf() {
    # shellcheck disable=SC1091
    . "$CLUSTER/cluster.env"
    cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
public network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
run dir = $RUN
admin socket = $RUN/\$name.asok
log to stderr = true
err to stderr = true
log to file = false
mon cluster log to file = false
debug mon = 0/5
debug paxos = 0/5
debug osd = 0/5
debug bluestore = 0/5
debug bluefs = 0/5
debug rocksdb = 0/5
debug rgw = 0/5
mon data = $CLUSTER/mon/\$id
osd data = $CLUSTER/osd/\$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = $BLOCK_BYTES
osd memory target = $(( ${CEPH_OSD_MEMORY_MIB:-1024} * 1024 * 1024 ))
crush location = root=default host=rgw
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd max object size = 134217728
[client.rgw]
rgw frontends = beast endpoint=$RGW_ADDRESS:$RGW_PORT
rgw data = $CLUSTER/rgw
EOF
}

pids=()
names=()

# The daemons by name, so that start-up can start one again.
run_daemon() {
    case $1 in
    mon) exec ceph-mon -c "$CONF" -i a -d "${run_as[@]}" ;;
    osd) exec ceph-osd -c "$CONF" -i "$OSD_ID" -d "${run_as[@]}" ;;
    rgw) exec radosgw -c "$CONF" -n client.rgw -d "${run_as[@]}" ;;
    esac
}

spawn() {
    run_daemon "$1" &
    pids+=("$!")
    names+=("$1")
}

stop_daemons() {
    local i pid
    trap - TERM INT
    rm -f "$RUN/ready"
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do  # newest first: radosgw, OSD, mon
        pid=${pids[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 1 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "${names[i]} (pid $pid) did not stop in 20s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    pids=()
    names=()
}

start_mon() {
    spawn mon
}

# The first start only. A directory left by a first start that died half-way holds no
# data yet (the gateway had not been ready), so it is removed and creation starts over.
create_cluster() {
    if [ -d "$CLUSTER" ]; then
        log "removing $CLUSTER, left by an unfinished first start"
        rm -rf "$CLUSTER"
    fi
    mkdir -p "$CLUSTER/mon/a" "$CLUSTER/osd" "$CLUSTER/rgw"
    local mon_port=${CEPH_MON_PORT:-6789} fsid osd_id
    fsid=$(cat /proc/sys/kernel/random/uuid)
    cat > "$CLUSTER/cluster.env" <<EOF
FSID=$fsid
MON_PORT=$mon_port
BLOCK_BYTES=$(( ${CEPH_STORE_GIB:-20} * 1024 * 1024 * 1024 ))
EOF
    write_conf
    log "creating the cluster in $CLUSTER (fsid $fsid)"
    ceph-authtool --create-keyring "$CLUSTER/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    monmaptool --create --addv a "v1:127.0.0.1:$mon_port" --fsid "$fsid" "$CLUSTER/monmap" >/dev/null
    own "$DATA" "$RUN"
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$CLUSTER/monmap" --keyring "$CLUSTER/mon.keyring" "${run_as[@]}"
    start_mon
    osd_id=$(ceph_client ceph osd create)
    echo "OSD_ID=$osd_id" >> "$CLUSTER/cluster.env"
    mkdir -p "$CLUSTER/osd/$osd_id"
    own "$CLUSTER"
    ceph-osd -c "$CONF" -i "$osd_id" --mkfs "${run_as[@]}" 2>&1 | tail -n 5 >&2
    [ -e "$CLUSTER/osd/$osd_id/block" ] || { log "ceph-osd --mkfs failed"; return 1; }
    touch "$CLUSTER/created"
}

# An OSD's first boot can lose a race inside Ceph (its first command to the mon carries a
# zero fsid, and the mon refuses it) and exit; a second start then succeeds. So the OSD and
# the gateway are started again, a few times at most, while the cluster comes up.
wait_for_gateway() {
    local deadline=$((SECONDS + START_TIMEOUT)) restarts=3 i
    until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$RGW_PORT/" 2>/dev/null; do
        for i in "${!pids[@]}"; do
            kill -0 "${pids[i]}" 2>/dev/null && continue
            wait "${pids[i]}" 2>/dev/null || true
            if [ "${names[i]}" = mon ] || [ $restarts -eq 0 ]; then
                log "${names[i]} exited during start-up"
                return 1
            fi
            restarts=$((restarts - 1))
            log "${names[i]} exited during start-up: starting it again"
            sleep 1
            run_daemon "${names[i]}" &
            pids[i]=$!
        done
        [ $SECONDS -lt $deadline ] || { log "radosgw did not answer within ${START_TIMEOUT}s"; return 1; }
        sleep 0.5
    done
}

ensure_user() {
    if ! ceph_client radosgw-admin user info --uid="$RGW_USER" >/dev/null 2>&1; then
        ceph_client radosgw-admin user create --uid="$RGW_USER" --display-name="$RGW_USER" \
            --access-key="$RGW_ACCESS_KEY" --secret-key="$RGW_SECRET_KEY" >/dev/null
        log "created S3 user $RGW_USER"
    elif ! ceph_client radosgw-admin user info --uid="$RGW_USER" | grep -qF "\"access_key\": \"$RGW_ACCESS_KEY\""; then
        ceph_client radosgw-admin key create --uid="$RGW_USER" --key-type=s3 \
            --access-key="$RGW_ACCESS_KEY" --secret-key="$RGW_SECRET_KEY" >/dev/null
        log "added access key $RGW_ACCESS_KEY to S3 user $RGW_USER"
    fi
}

ensure_bucket() {
    [ -n "${RGW_BUCKET:-}" ] || return 0
    local url="http://127.0.0.1:$RGW_PORT/$RGW_BUCKET" status
    status=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -X PUT \
        --aws-sigv4 "aws:amz:us-east-1:s3" --user "$RGW_ACCESS_KEY:$RGW_SECRET_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$url")
    case $status in
    200) log "bucket $RGW_BUCKET is ready" ;;
    409) log "bucket $RGW_BUCKET exists" ;;  # BucketAlreadyExists / ...OwnedByYou
    *) log "creating bucket $RGW_BUCKET failed: HTTP $status"; return 1 ;;
    esac
}

main() {
    : "${RGW_ACCESS_KEY:?set RGW_ACCESS_KEY}" "${RGW_SECRET_KEY:?set RGW_SECRET_KEY}"
    mkdir -p "$DATA" "$RUN"
    rm -f "$RUN/ready" "$RUN"/*.asok
    trap 'log "stopping"; stop_daemons; exit 0' TERM INT
    trap 'status=$?; [ $status -eq 0 ] || log "exiting with status $status"; stop_daemons' EXIT

    if [ -e "$CLUSTER/created" ]; then
        write_conf
        own "$DATA" "$RUN"
        start_mon
    else
        create_cluster
    fi
    # shellcheck disable=SC1091
    . "$CLUSTER/cluster.env"
    spawn osd
    spawn rgw
    wait_for_gateway
    ensure_user
    ensure_bucket
    touch "$RUN/ready"
    log "ready: S3 on $RGW_ADDRESS:$RGW_PORT, data in $DATA"

    # Supervise: the first daemon to exit takes the others down with it.
    local status=0
    wait -n "${pids[@]}" || status=$?
    log "a daemon exited (status $status): stopping the others"
    rm -f "$RUN/ready"
    exit 1
}

case "${1:-}" in
health) health ;;
"") main ;;
*) echo "usage: $0 [health]" >&2; exit 2 ;;
esac
