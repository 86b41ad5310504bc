#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CDI's helper programs in the importer image (README "Running inside CDI"):
#   cdi-containerimage-server  static, run alone in an empty chroot (as inside a scratch
#                              containerDisk image): GET / Range / HEAD / /info / 404, the ready/done
#                              files, the bootc refusal; and the pod importer in node-pull mode
#                              against it (KUBEVIRT_IO env -> termination labels)
#   cdi-image-size-detection   qcow2 / raw sizes, CDI's exit codes and termination bytes
#   cdi-source-update-poller   digest from a real docker-registry, patch of the DataImportCron
#                              through a recording HTTPS stand-in of the Kubernetes API
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/../support/nginx.sh"
source "$E2E_DIR/../support/registry.sh"

BIN=$(dirname "$CDI")
SERVER=$BIN/cdi-containerimage-server
[[ -x $SERVER ]] || { echo "cdi-containerimage-server not built next to $CDI" >&2; exit 1; }
link() { if [[ -x $BIN/$1 ]]; then echo "$BIN/$1"; else ln -sf "$CDI" "$T/$1"; echo "$T/$1"; fi; }
POD=$(link cdi-importer)
SIZE=$(link cdi-image-size-detection)
POLLER=$(link cdi-source-update-poller)
CHROOT=$(command -v chroot || echo /usr/sbin/chroot)
QCOW=$IMG/qcow2-v3.qcow2
KUBE_PIDS=()
trap 'for p in "${KUBE_PIDS[@]}"; do kill "$p" 2>/dev/null; done; registry_stop_all; cleanup' EXIT

# --- cdi-containerimage-server -------------------------------------------------------------------

# jail DIR: an empty root holding only the static server (/shared/server) and /disk/disk.img.
jail() {
  J=$1
  mkdir -p "$J/shared" "$J/disk"
  cp "$SERVER" "$J/shared/server"   # what the controller's init container does
  head -c $((3 * MIB + 123)) "$IMG/source.raw" > "$J/disk/disk.img"
}

# serve_jail PORT ENV...: starts the server in the chroot; SRV_PID.
serve_jail() {
  local port=$1
  shift
  env -i "$@" "$CHROOT" "$J" /shared/server -p "$port" -image-dir /disk -ready-file /shared/ready \
    -done-file /shared/done > "$W/_meta/srv.out" 2> "$W/_meta/srv.err" &
  SRV_PID=$!
  register_pid $SRV_PID
  for _ in $(seq 100); do [[ -f $J/shared/ready ]] && return 0; sleep 0.05; done
  cat "$W/_meta/srv.err" >&2
  fail "the server wrote no ready file"
}

# wait_exit PID: the server's exit status (it must end within 5 s).
wait_exit() {
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$1" 2>/dev/null && fail "server still running"
  wait "$1"
}

t_server_static_in_empty_chroot() {
  file -L "$SERVER" | grep -q 'statically linked' || fail "not a static executable: $(file -L "$SERVER")"
  jail "$W/jail"
  [[ $(find "$J" | wc -l) == 5 ]] || fail "jail holds more than the server and the disk: $(find "$J")"
  local port
  port=$(_free_port)
  serve_jail "$port" INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small 'ODD=a"b<c'
  [[ $(cat "$J/shared/ready") == disk.img ]] || fail "ready file content: $(cat "$J/shared/ready")"
  [[ $(stat -c %a "$J/shared/ready") == 600 ]] || fail "ready file mode $(stat -c %a "$J/shared/ready")"
  local u=http://127.0.0.1:$port
  # GET: the whole file, byte for byte
  curl -sf "$u/disk.img" -o "$W/got" || fail "GET failed"
  cmp "$W/got" "$J/disk/disk.img" || fail "GET body differs"
  # Range: 206 with Content-Range, exactly those bytes
  curl -sf -D "$W/h" -r 1000-1999 "$u/disk.img" -o "$W/part" || fail "Range GET failed"
  grep -q '^HTTP/1.1 206' "$W/h" || fail "no 206: $(cat "$W/h")"
  grep -qi "^Content-Range: bytes 1000-1999/$((3 * MIB + 123))" "$W/h" || fail "Content-Range: $(cat "$W/h")"
  cmp "$W/part" <(tail -c +1001 "$J/disk/disk.img" | head -c 1000) || fail "range bytes differ"
  # unsatisfiable range
  [[ $(curl -s -o /dev/null -w '%{http_code}' -r $((4 * MIB))- "$u/disk.img") == 416 ]] || fail "no 416"
  # HEAD: headers, no body
  curl -sf -I "$u/disk.img" > "$W/head" || fail "HEAD failed"
  grep -qi "^Content-Length: $((3 * MIB + 123))" "$W/head" || fail "HEAD Content-Length: $(cat "$W/head")"
  grep -qi '^Accept-Ranges: bytes' "$W/head" || fail "no Accept-Ranges"
  grep -qi '^Last-Modified: ' "$W/head" || fail "no Last-Modified"
  # /info: ServerInfo with the container's environment, as Go encodes it
  [[ $(curl -sf "$u/info") == '{"env":["INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small","ODD=a\"b\u003cc"]}' ]] ||
    fail "/info: $(curl -s "$u/info")"
  curl -sf -D "$W/ih" -o /dev/null "$u/info"
  grep -qi '^Content-Type: application/json' "$W/ih" || fail "/info content type"
  # another name: Go's 404
  [[ $(curl -s -w '%{http_code}' "$u/other.img") == $'404 page not found\n404' ]] || fail "no 404"
  # keep-alive: two requests on one connection
  curl -sf "$u/info" "$u/info" -o /dev/null -o /dev/null || fail "keep-alive"
  # done file: removed, server ends 0, ready file removed, listener closed
  touch "$J/shared/done"
  wait_exit $SRV_PID || fail "server exit $?"
  [[ ! -e $J/shared/done ]] || fail "done file not removed"
  [[ ! -e $J/shared/ready ]] || fail "ready file not removed"
  curl -s -o /dev/null "$u/info" && fail "still listening"
  grep -q "Serving /disk on HTTP port: $port" "$W/_meta/srv.err" || fail "no serving line"
  grep -q 'Importer has completed' "$W/_meta/srv.err" || fail "no completion line"
  [[ $(cat "$W/_meta/srv.out") == $'/disk\n/disk/disk.img' ]] || fail "file listing: $(cat "$W/_meta/srv.out")"
}

t_server_refuses_bootc() {
  jail "$W/jail"
  mkdir "$J/ostree"
  set +e
  env -i "$CHROOT" "$J" /shared/server -p "$(_free_port)" -image-dir /disk > "$W/_meta/out" 2> "$W/_meta/err"
  local rc=$?
  set -e
  ((rc == 1)) || fail "exit $rc"
  grep -q ' bootc image detected: this image contains an ostree-based bootable OS and cannot be imported as a regular container disk; bootc-to-disk conversion is not yet implemented$' \
    "$W/_meta/err" || fail "stderr: $(cat "$W/_meta/err")"
  [[ ! -e $J/shared/ready ]] || fail "ready file written"
  rmdir "$J/ostree"
  mkdir "$J/sysroot"
  env -i "$CHROOT" "$J" /shared/server -image-dir /disk 2> "$W/_meta/err" && fail "sysroot accepted"
  grep -q 'bootc image detected' "$W/_meta/err" || fail "sysroot: $(cat "$W/_meta/err")"
}

t_server_flags_and_bad_dirs() {
  jail "$W/jail"
  # -h (the DataImportCron digest pod runs "/shared/server -h"): usage, exit 0
  env -i "$CHROOT" "$J" /shared/server -h 2> "$W/_meta/err" || fail "-h exit $?"
  grep -q '^Usage of /shared/server:' "$W/_meta/err" || fail "usage: $(cat "$W/_meta/err")"
  grep -q 'directory to serve (default ".")' "$W/_meta/err" || fail "usage defaults"
  set +e
  env -i "$CHROOT" "$J" /shared/server -nope 2> "$W/_meta/err"
  local rc=$?
  set -e
  ((rc == 2)) || fail "unknown flag exit $rc"
  head -1 "$W/_meta/err" | grep -qx 'flag provided but not defined: -nope' || fail "$(cat "$W/_meta/err")"
  # two files in the image dir
  touch "$J/disk/second"
  set +e
  env -i "$CHROOT" "$J" /shared/server --p="$(_free_port)" -image-dir=/disk 2> "$W/_meta/err"
  rc=$?
  set -e
  ((rc == 1)) || fail "two files exit $rc"
  grep -q 'Failed get image filename in /disk: Invalid container image$' "$W/_meta/err" || fail "$(cat "$W/_meta/err")"
}

t_node_pull_labels() {
  jail "$W/jail"
  cp "$QCOW" "$J/disk/disk.img"
  mv "$J/disk/disk.img" "$J/disk/fedora.qcow2"   # the ready file carries the real name
  local port R=$W/jail   # the pod root: the importer sees the same /shared as the server
  mkdir -p "$R/data" "$R/dev"
  port=$(_free_port)
  serve_jail "$port" INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small \
    PREFERENCE_KUBEVIRT_IO_DEFAULT_PREFERENCE=fedora PATH=/bin
  set +e
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$R" CDI_IMPORT_METRICS_LISTEN=off IMPORTER_SOURCE=http \
    IMPORTER_ENDPOINT="http://127.0.0.1:$port/disk.img" IMPORTER_PULL_METHOD=node IMPORTER_READY_FILE=/shared/ready \
    IMPORTER_DONE_FILE=/shared/done IMPORTER_CONTENTTYPE=kubevirt FILESYSTEM_OVERHEAD=0 PREALLOCATION=false \
    timeout -k 5 "$CMD_TIMEOUT" "$POD" -v=1 > "$W/_meta/out" 2> "$W/_meta/err"
  local rc=$?
  set -e
  ((rc == 0)) || { show_output; fail "importer exit $rc"; }
  local want='{"scratchSpaceRequired":false,"preallocationApplied":false,"labels":{"instancetype.kubevirt.io/default-instancetype":"u1.small","preference.kubevirt.io/default-preference":"fedora"},"message":"Import Complete"}'
  [[ $(cat "$R/dev/termination-log") == "$want" ]] || { show_output; fail "termination: $(cat "$R/dev/termination-log")"; }
  assert_same_as_qemu "$QCOW" "$R/data/disk.img"
  wait_exit $SRV_PID || fail "server exit $?"   # the importer's done file ended it
}

t_node_pull_info_unreachable() {
  # No /info (a plain file server): the import completes without labels, the failure is logged.
  mkdir -p "$W/root/data" "$W/root/dev" "$W/root/shared" "$W/www"
  cp "$IMG/source.raw" "$W/www/disk.img"
  echo -n disk.img > "$W/root/shared/ready"
  local port
  port=$(_free_port)
  python3 -m http.server -b 127.0.0.1 -d "$W/www" "$port" > /dev/null 2>&1 &
  register_pid $!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$W/root" CDI_IMPORT_METRICS_LISTEN=off IMPORTER_SOURCE=http \
    IMPORTER_ENDPOINT="http://127.0.0.1:$port/disk.img" IMPORTER_PULL_METHOD=node IMPORTER_READY_FILE=/shared/ready \
    IMPORTER_DONE_FILE=/shared/done PREALLOCATION=false "$POD" > "$W/_meta/out" 2> "$W/_meta/err" ||
    { show_output; fail "importer failed"; }
  [[ $(cat "$W/root/dev/termination-log") == '{"scratchSpaceRequired":false,"preallocationApplied":false,"message":"Import Complete"}' ]] ||
    fail "termination: $(cat "$W/root/dev/termination-log")"
  grep -q 'failed request containerimage-server info: expected status code 200, got 404' "$W/_meta/err" ||
    { show_output; fail "no info error logged"; }
  [[ -e $W/root/shared/done ]] || fail "no done file"
}

# --- cdi-image-size-detection --------------------------------------------------------------------

# size_detect ROOT ARGS...: LAST_RC, termination bytes in ROOT/dev/termination-log.
size_detect() {
  local root=$1
  shift
  set +e
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$root" "$SIZE" "$@" > "$W/_meta/out" 2> "$W/_meta/err"
  LAST_RC=$?
  set -e
}

t_size_detection() {
  local R=$W/root want
  mkdir -p "$R/dev"
  want=$(qemu-img info --output=json "$QCOW" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
  size_detect "$R" -image-path "$QCOW"
  ((LAST_RC == 0)) || { show_output; fail "qcow2 exit $LAST_RC"; }
  [[ $(cat "$R/dev/termination-log") == "$want" ]] || fail "qcow2 size $(cat "$R/dev/termination-log"), want $want"
  [[ $(stat -c %a "$R/dev/termination-log") == 600 ]] || fail "termination log mode"
  grep -q 'Size-detection binary has completed' "$W/_meta/err" || fail "no completion line"
  # raw, through -scheme and Go's --flag=value syntax
  head -c 5000000 "$IMG/source.raw" > "$W/raw.img"
  size_detect "$R" --image-path="$W/raw.img" -scheme file://
  ((LAST_RC == 0)) || { show_output; fail "raw exit $LAST_RC"; }
  [[ $(cat "$R/dev/termination-log") == 5000000 ]] || fail "raw size $(cat "$R/dev/termination-log")"
}

t_size_detection_errors() {
  local R=$W/root
  mkdir -p "$R/dev"
  size_detect "$R"
  ((LAST_RC == 1)) || fail "no args: exit $LAST_RC (ErrBadArguments = 1)"
  grep -q 'One or more mandatory parameters are missing$' "$W/_meta/err" || fail "$(cat "$W/_meta/err")"
  size_detect "$R" -image-path "$W/missing.img"
  ((LAST_RC == 2)) || fail "missing: exit $LAST_RC (ErrInvalidFile = 2)"
  grep -q "Unable to extract information from '$W/missing.img'" "$W/_meta/err" || fail "$(cat "$W/_meta/err")"
  # a qcow2 cut inside its header (qemu-img info: "qcow2 header too short")
  head -c 100 "$QCOW" > "$W/bad.qcow2"
  size_detect "$R" -image-path "$W/bad.qcow2"
  ((LAST_RC == 2)) || { show_output; fail "bad file: exit $LAST_RC (ErrInvalidFile = 2)"; }
  grep -q "Unable to extract information from '$W/bad.qcow2': '$W/bad.qcow2: qcow2: truncated" "$W/_meta/err" ||
    fail "$(cat "$W/_meta/err")"
  size_detect "$R" -image-path "$W/disk"$'\x01'".img"
  ((LAST_RC == 3)) || fail "bad path: exit $LAST_RC (ErrInvalidPath = 3)"
  grep -q "Unable to parse the provided URL: 'parse " "$W/_meta/err" || fail "$(cat "$W/_meta/err")"
  size_detect "$R" -image-path "$QCOW" -scheme http://
  ((LAST_RC == 2)) || fail "http scheme: exit $LAST_RC"
  grep -q "not valid schema http" "$W/_meta/err" || fail "$(cat "$W/_meta/err")"
  [[ ! -e $R/dev/termination-log ]] || fail "a failure wrote a termination message"
  # the termination log cannot be written: ErrBadTermFile = 4
  size_detect "$W/no-such-root" -image-path "$QCOW"
  ((LAST_RC == 4)) || fail "bad termination file: exit $LAST_RC"
  grep -q "Unable to write to termination file: 'could not create termination message file: " "$W/_meta/err" ||
    fail "$(cat "$W/_meta/err")"
  size_detect "$R" -image-path
  ((LAST_RC == 2)) || fail "flag without value: exit $LAST_RC (Go's flag error)"
}

# --- cdi-source-update-poller --------------------------------------------------------------------

KUBE_CERTS=$T/kube-certs
HTUSER=testuser
HTPASS='s3cret pass:word'
_make_certs "$KUBE_CERTS" > /dev/null 2>&1 || { echo "openssl failed" >&2; exit 1; }
MK=$E2E_DIR/../support/make_oci_layout.py
L=$T/layout
mkdir -p "$L"
head -c $((1 * MIB)) "$IMG/source.raw" > "$T/small.raw"
mk() { /usr/bin/python3 "$MK" "$@" >/dev/null || { echo "make_oci_layout.py $* failed" >&2; exit 1; }; }
mk image "$L" amd64 --arch amd64 --layer "gzip:disk/,disk/disk.img=$T/small.raw"
mk image "$L" arm64 --arch arm64 --variant v8 --layer "gzip:disk/,disk/disk.img=$T/small.raw"
mk index "$L" multi amd64 arm64
registry_start "$T/reg" tls-auth > /dev/null || { echo "registry did not start" >&2; exit 1; }
REG=127.0.0.1:$REGISTRY_PORT
REG_CA=$T/reg/certs/ca.crt
for tag in amd64 multi; do registry_push "$L" "$tag" "cd/img:$tag" || { echo "push of $tag failed" >&2; exit 1; }; done

# manifest_digest TAG: what the registry says the tag's manifest digest is.
manifest_digest() {
  curl -sf --cacert "$REG_CA" -u "$HTUSER:$HTPASS" -I \
    -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json' \
    "https://$REG/v2/cd/img/manifests/$1" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p'
}

# kube_start ANNOTATIONS_JSON: the API stand-in serving ns/cron with those annotations; KUBE_PORT,
# KUBE_LOG. The pod root $W/root gets the service account (token + ca.crt) and /certs (registry CA).
kube_start() {
  R=$W/root
  local sa=$R/var/run/secrets/kubernetes.io/serviceaccount
  mkdir -p "$sa" "$R/certs"
  cp "$KUBE_CERTS/ca.crt" "$sa/ca.crt"
  printf 'sa-token-%s\n' "$RANDOM" > "$sa/token"
  cp "$REG_CA" "$R/certs/ca.crt"
  printf '{"apiVersion":"cdi.kubevirt.io/v1beta1","kind":"DataImportCron","metadata":{"name":"cron1","namespace":"ns1","annotations":%s}}' \
    "$1" > "$W/object.json"
  KUBE_LOG=$W/kube.log
  : > "$KUBE_LOG"
  python3 "$E2E_DIR/../support/kube_api.py" --cert "$KUBE_CERTS/server.crt" --key "$KUBE_CERTS/server.key" \
    --port-file "$W/kube.port" --log "$KUBE_LOG" --object "$W/object.json" --ns ns1 --name cron1 &
  KUBE_PIDS+=($!)
  register_pid $!
  for _ in $(seq 200); do [[ -s $W/kube.port ]] && break; sleep 0.05; done
  KUBE_PORT=$(cat "$W/kube.port")
}

poll() {
  set +e
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$R" KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$KUBE_PORT" \
    IMPORTER_ACCESS_KEY_ID="$HTUSER" IMPORTER_SECRET_KEY="$HTPASS" \
    timeout -k 5 "$CMD_TIMEOUT" "$POLLER" "$@" > "$W/_meta/out" 2> "$W/_meta/err"
  LAST_RC=$?
  set -e
}

# check_requests DIGEST|"": the GET, then one PATCH with lastCronTime (+ the digest when given).
check_requests() {
  python3 - "$KUBE_LOG" "$(cat "$R/var/run/secrets/kubernetes.io/serviceaccount/token")" "$1" <<'EOF' || fail "API requests wrong: $(cat "$KUBE_LOG")"
import json, re, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
token, digest = sys.argv[2], sys.argv[3]
path = "/apis/cdi.kubevirt.io/v1beta1/namespaces/ns1/dataimportcrons/cron1"
assert [r["method"] for r in reqs] == ["GET", "PATCH"], reqs
assert all(r["path"] == path and r["authorization"] == "Bearer " + token for r in reqs), reqs
p = reqs[1]
assert p["content_type"] == "application/json-patch+json", p
body = json.loads(p["body"])
assert body[0]["op"] == "add" and body[0]["path"] == "/metadata/annotations/cdi.kubevirt.io~1storage.import.lastCronTime", body
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", body[0]["value"]), body
want = [{"op": "add", "path": "/metadata/annotations/cdi.kubevirt.io~1storage.import.sourceDesiredDigest", "value": digest}] if digest else []
assert body[1:] == want, body
assert p["body"] == json.dumps(body, separators=(",", ":")), p["body"]
EOF
}

t_poller_digest_changed() {
  kube_start '{"cdi.kubevirt.io/storage.import.sourceDesiredDigest":"sha256:0000"}'
  local d
  d=$(manifest_digest amd64)
  [[ $d == sha256:* ]] || fail "registry digest: $d"
  poll -ns ns1 -cron cron1 -url "docker://$REG/cd/img:amd64" -certdir /certs
  ((LAST_RC == 0)) || { show_output; fail "poller exit $LAST_RC"; }
  check_requests "$d"
  grep -q "Digest is $d" "$W/_meta/err" || fail "no digest line"
  grep -q 'Digest updated$' "$W/_meta/err" || fail "no update line"
}

t_poller_digest_unchanged_index() {
  local d
  d=$(manifest_digest multi)   # a multi-arch image: the index's digest
  kube_start "{\"cdi.kubevirt.io/storage.import.sourceDesiredDigest\":\"$d\"}"
  poll --ns=ns1 --cron=cron1 --url="docker://$REG/cd/img:multi" --certdir=/certs
  ((LAST_RC == 0)) || { show_output; fail "poller exit $LAST_RC"; }
  check_requests ""
  grep -q "Digest is $d" "$W/_meta/err" || fail "not the index digest: $(cat "$W/_meta/err")"
  grep -q 'No digest update$' "$W/_meta/err" || fail "no 'No digest update' line"
}

t_poller_errors() {
  kube_start '{}'
  poll -ns ns1 -url "docker://$REG/cd/img:amd64"
  ((LAST_RC == 1)) || fail "missing -cron: exit $LAST_RC"
  grep -q 'One or more mandatory parameters are missing$' "$W/_meta/err" || fail "$(cat "$W/_meta/err")"
  poll -ns ns1 -cron cron1 -url "docker://$REG/cd/img:nope" -certdir /certs
  ((LAST_RC == 1)) || fail "unknown tag: exit $LAST_RC"
  grep -q 'Failed to get image digest: ' "$W/_meta/err" || fail "$(cat "$W/_meta/err")"
  poll -ns ns1 -cron other -url "docker://$REG/cd/img:amd64" -certdir /certs
  ((LAST_RC == 1)) || fail "unknown cron: exit $LAST_RC"
  grep -q 'Failed getting DataImportCron ns1/other: dataimportcrons.cdi.kubevirt.io "other" not found$' "$W/_meta/err" ||
    fail "$(cat "$W/_meta/err")"
  poll -ns ns1 -cron cron1 -url "docker://$REG/cd/img:amd64" -certdir /certs -kubeconfig /root/.kube/config
  ((LAST_RC == 1)) || fail "kubeconfig: exit $LAST_RC"
  grep -q 'Failed to build config; kubeURL  configPath /root/.kube/config: kubeconfig files are not supported' "$W/_meta/err" ||
    fail "$(cat "$W/_meta/err")"
  # -server: the API URL given explicitly (service account token still used)
  : > "$KUBE_LOG"
  poll -ns ns1 -cron cron1 -url "docker://$REG/cd/img:amd64" -certdir /certs -server "https://127.0.0.1:$KUBE_PORT"
  ((LAST_RC == 0)) || { show_output; fail "-server: exit $LAST_RC"; }
  check_requests "$(manifest_digest amd64)"
}

run_test server_static_in_empty_chroot t_server_static_in_empty_chroot
run_test server_refuses_bootc t_server_refuses_bootc
run_test server_flags_and_bad_dirs t_server_flags_and_bad_dirs
run_test node_pull_labels t_node_pull_labels
run_test node_pull_info_unreachable t_node_pull_info_unreachable
run_test size_detection t_size_detection
run_test size_detection_errors t_size_detection_errors
run_test poller_digest_changed t_poller_digest_changed
run_test poller_digest_unchanged_index t_poller_digest_unchanged_index
run_test poller_errors t_poller_errors
finish
