#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The container images, built from the Dockerfile with podman and run the way kubelet runs CDI's
# pods: the image's own entrypoint with the controller's args (-v=1), the environment exactly as
# CDI HEAD's controller builds it (pkg/controller/import-controller.go makeImportEnv,
# upload-controller.go, pvc-clone-controller.go size detection, dataimportcron-controller.go
# poller), volumes at CDI's paths, runAsUser 107 / fsGroup 107 (SetRestrictedSecurityContext) or the
# image's USER 1001 where the controller clears runAsUser (poller). Every case checks the exit code,
# the exact termination-message bytes and the bytes written (against qemu-img convert).
#
#   tests/image/test_images.sh [WORK_DIR [TEST_NAME_FILTER]]      (WORK_DIR default: build/image-test)
#
# Needs root, podman + runc, debootstrap (scripts/install-deps.sh). The Debian 12 base is made with
# debootstrap --variant=minbase from this machine's apt mirror and cached in WORK_DIR/base; image
# layers (and the build's ccache) are cached by podman, so a rerun without source changes is quick.
# If podman cannot run here the script fails (exit 1); it never skips.
# The built images stay (tagged localhost/cdi-import/*:test) as the next run's layer cache.
# Environment: IMAGE_JOBS (compile jobs inside the build, default 2),
# CDI_IMAGE_TEST_DOCKERFILE (another Dockerfile, when iterating on it; default: the project's).
set -uo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${1:-$ROOT/build/image-test}
FILTER=${2:-}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
source "$HERE/lib.sh"
source "$ROOT/tests/support/nginx.sh"
source "$ROOT/tests/support/registry.sh"
readonly MIB=$((1024 * 1024))

for c in qemu-img curl openssl python3 nginx nsenter losetup mknod xz bc; do
  command -v "$c" >/dev/null || die "$c is not installed (scripts/install-deps.sh installs it)"
done
podman_setup "$WORK"

BASE=localhost/debian:12
IMPORTER=localhost/cdi-import/importer:test
UPLOADSERVER=localhost/cdi-import/uploadserver:test
CLONER=localhost/cdi-import/cloner:test
MEASURE=$WORK/measurements.txt
measure() { printf '%s\n' "$*" | tee -a "$MEASURE"; }

if [[ ${CDI_IMAGE_TEST_IN_NETNS:-0} != 1 ]]; then
# --- base image and image builds (in the machine's network namespace: apt needs the mirror) ------
: > "$MEASURE"
base_image "$WORK/base" "$BASE"
build_start=$SECONDS
for stage in importer uploadserver cloner; do
  tag=localhost/cdi-import/$stage:test
  s=$SECONDS
  "${PODMAN[@]}" build --pull=never --network host "${ULIMITS[@]}" --layers \
    --build-arg BASE_IMAGE=$BASE --build-arg JOBS="${IMAGE_JOBS:-2}" --target "$stage" -t "$tag" \
    -f "${CDI_IMAGE_TEST_DOCKERFILE:-$ROOT/Dockerfile}" "$ROOT" > "$WORK/build-$stage.log" 2>&1 ||
    { tail -40 "$WORK/build-$stage.log" >&2; die "podman build --target $stage failed (log: $WORK/build-$stage.log)"; }
  echo "built $tag in $((SECONDS - s)) s"
done
measure "build (all three targets): $((SECONDS - build_start)) s"
for stage in importer uploadserver cloner; do
  measure "image size $stage: $("${PODMAN[@]}" image inspect --format '{{.Size}}' "localhost/cdi-import/$stage:test" |
    awk '{ printf "%.1f MB (%d bytes)", $1 / 1e6, $1 }')"
done

# The cases run in a private network namespace holding only loopback: nginx, the registry, the
# API stand-in and `--network host` containers (whose metrics server listens on :8443 as in a pod)
# are reachable on 127.0.0.1 and from nowhere else. Pods get namespaces of their own.
CDI_IMAGE_TEST_IN_NETNS=1 exec unshare --net -- bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$WORK" "$FILTER"
fi

T=$(mktemp -d "$WORK/run.XXXXXX")
trap 'run_cleanup; nginx_stop; registry_stop_all; rm -rf "$T"' EXIT
trap 'exit 130' INT TERM

# --- inputs and servers -------------------------------------------------------------------------
IN=$T/inputs
mkdir -p "$IN"
# 32 MiB guest: random, text and zero regions
truncate -s $((32 * MIB)) "$IN/source.raw"
head -c $((3 * MIB)) /dev/urandom | dd of="$IN/source.raw" bs=1M seek=1 conv=notrunc status=none
yes "cdi-import image test" | head -c $((2 * MIB)) | dd of="$IN/source.raw" bs=1M seek=20 conv=notrunc status=none
head -c $((1 * MIB)) /dev/urandom | dd of="$IN/source.raw" bs=1M seek=31 conv=notrunc status=none
qemu-img convert -q -f raw -O qcow2 "$IN/source.raw" "$IN/disk.qcow2"
xz -T2 -1 -k -c "$IN/source.raw" > "$IN/disk.raw.xz"
qemu-img create -q -f qcow2 -b disk.qcow2 -F qcow2 "$IN/overlay.qcow2"
mkdir -p "$T/docroot"
for f in disk.qcow2 disk.raw.xz overlay.qcow2; do ln -s "$IN/$f" "$T/docroot/$f"; done
nginx_start "$T/nginx" "$T/docroot" || die "nginx did not start"
H=http://127.0.0.1:$HTTP_PORT
SUCCESS='{"scratchSpaceRequired":false,"preallocationApplied":false,"message":"Import Complete"}'
# CDI's default filesystem overhead (pkg/common DefaultGlobalOverhead); block volumes get "0"
FS_OVERHEAD=0.06
# 64Mi request, 6 %: usable = RoundDown(ceil(64Mi / 1.06), 1Mi) = 60 MiB
USABLE_64MI=$((60 * MIB))

# import_env VAR=VALUE...: makeImportEnv's variables in its order, defaults as the controller sets
# them for an http DataVolume on a filesystem PVC; the arguments override (same names).
import_env() {
  local -A v=(
    [IMPORTER_SOURCE]=http [IMPORTER_ENDPOINT]= [IMPORTER_CONTENTTYPE]=kubevirt [IMPORTER_IMAGE_SIZE]=64Mi
    [OWNER_UID]=6f1c9e2a-4d0b-4c55-9a53-3a1f1d2e7b10 [FILESYSTEM_OVERHEAD]=$FS_OVERHEAD [INSECURE_TLS]=false
    [IMPORTER_DISK_ID]= [IMPORTER_UUID]= [IMPORTER_PULL_METHOD]= [IMPORTER_READY_FILE]= [IMPORTER_DONE_FILE]=
    [IMPORTER_BACKING_FILE]= [IMPORTER_THUMBPRINT]= [http_proxy]= [https_proxy]= [no_proxy]=
    [IMPORTER_CURRENT_CHECKPOINT]= [IMPORTER_PREVIOUS_CHECKPOINT]= [IMPORTER_FINAL_CHECKPOINT]=
    [PREALLOCATION]=false [CACHE_MODE]= [IMPORTER_REGISTRY_IMAGE_ARCHITECTURE]= [IMPORTER_CHECKSUM]=
  )
  local order=(IMPORTER_SOURCE IMPORTER_ENDPOINT IMPORTER_CONTENTTYPE IMPORTER_IMAGE_SIZE OWNER_UID
    FILESYSTEM_OVERHEAD INSECURE_TLS IMPORTER_DISK_ID IMPORTER_UUID IMPORTER_PULL_METHOD IMPORTER_READY_FILE
    IMPORTER_DONE_FILE IMPORTER_BACKING_FILE IMPORTER_THUMBPRINT http_proxy https_proxy no_proxy
    IMPORTER_CURRENT_CHECKPOINT IMPORTER_PREVIOUS_CHECKPOINT IMPORTER_FINAL_CHECKPOINT PREALLOCATION CACHE_MODE
    IMPORTER_REGISTRY_IMAGE_ARCHITECTURE IMPORTER_CHECKSUM)
  local kv k
  for kv in "$@"; do v[${kv%%=*}]=${kv#*=}; done
  ENV_ARGS=()
  for k in "${order[@]}"; do ENV_ARGS+=(-e "$k=${v[$k]}"); done
}

# importer_fs LABEL VAR=VALUE...: the importer pod on a filesystem PVC: $W/data at /data,
# $W/termination-log at /dev/termination-log, host network (nginx on 127.0.0.1), args -v=1.
importer_fs() {
  local label=$1
  shift
  volume_dir "$W/data"
  termination_file "$W/termination-log"
  import_env "$@"
  kube_run "$label" --network host "${KUBE_SC[@]}" "${ENV_ARGS[@]}" \
    -v "$W/data:/data" -v "$W/termination-log:/dev/termination-log" -- "$IMPORTER" -v=1
}

# --- 1. http qcow2 into /data --------------------------------------------------------------------
t_http_qcow2_filesystem() {
  importer_fs import IMPORTER_ENDPOINT="$H/disk.qcow2"
  expect_term 0 "$W/termination-log" "$SUCCESS"
  assert_raw_prefix "$IN/disk.qcow2" "$W/data/disk.img" "$USABLE_64MI"
  [[ $(stat -c %u:%g "$W/data/disk.img") == 107:107 ]] || fail "disk.img owned by $(stat -c %u:%g "$W/data/disk.img"), expected 107:107 (runAsUser 107, fsGroup setgid dir)"
  grep -q "Import Complete" "$W/_meta/import.err" || { show; fail "log lacks 'Import Complete'"; }
  measure "importer: podman run -> termination message (32 MiB qcow2 over http): ${LAST_SECS} s"
}

# --- 2. http raw.xz into a block volume ---------------------------------------------------------
# kubelet hands a block PVC to the container as a device node at /dev/cdi-block-volume. With
# runAsUser 107 the node must be usable by UID 107: CRI-O / containerd do that with
# device_ownership_from_security_context = true (the node is owned by the container's
# runAsUser:runAsGroup, here 107:0), which is what KubeVirt documents for non-root block volumes.
# Here: a node for the loop device made with mknod, owned 107:0 mode 0660, passed with --device
# (podman copies the owner and mode into the container and allows the device in the cgroup).
t_http_raw_xz_block() {
  dd if=/dev/zero bs=1M count=48 status=none | tr '\0' '\377' > "$W/blockfile"
  local dev major minor
  dev=$(losetup --find --show "$W/blockfile") || fail "losetup failed"
  at_exit losetup -d "$dev"
  major=$((16#$(stat -c %t "$dev"))); minor=$((16#$(stat -c %T "$dev")))
  mknod -m 0660 "$W/blocknode" b "$major" "$minor"
  chown 107:0 "$W/blocknode"
  termination_file "$W/termination-log"
  import_env IMPORTER_ENDPOINT="$H/disk.raw.xz" IMPORTER_IMAGE_SIZE=48Mi FILESYSTEM_OVERHEAD=0
  kube_run import --network host "${KUBE_SC[@]}" "${ENV_ARGS[@]}" \
    --device "$W/blocknode:/dev/cdi-block-volume:rw" -v "$W/termination-log:/dev/termination-log" -- "$IMPORTER" -v=1
  expect_term 0 "$W/termination-log" "$SUCCESS"
  head -c $((32 * MIB)) "$dev" > "$W/_meta/got.raw"
  cmp "$IN/source.raw" "$W/_meta/got.raw" >&2 || fail "block volume differs from the source"
  [[ $(tail -c +$((32 * MIB + 1)) "$dev" | tr -d '\377' | wc -c) == 0 ]] || fail "bytes past the image were changed"
}

# --- 3. blank -----------------------------------------------------------------------------------
t_blank() {
  importer_fs import IMPORTER_SOURCE=none
  expect_term 0 "$W/termination-log" '{"preallocationApplied":false,"message":"Import Complete"}'
  [[ $(stat -c %s "$W/data/disk.img") == "$USABLE_64MI" ]] || fail "blank size $(stat -c %s "$W/data/disk.img")"
  (($(stat -c %b "$W/data/disk.img") * 512 < MIB)) || fail "blank image is not sparse"
  cmp -n "$USABLE_64MI" "$W/data/disk.img" /dev/zero >&2 || fail "blank image is not zero"
  measure "importer: podman run -> termination message (blank 64Mi): ${LAST_SECS} s"
}

# --- 4. clean failures --------------------------------------------------------------------------
t_http_404() {
  importer_fs import IMPORTER_ENDPOINT="$H/missing.img"
  expect_term 1 "$W/termination-log" "Unable to connect to http data source: HTTP 404 Not Found for $H/missing.img"
  [[ -z $(ls -A "$W/data") ]] || fail "leftovers in /data: $(ls -A "$W/data")"
}

t_backing_file_refused() {
  importer_fs import IMPORTER_ENDPOINT="$H/overlay.qcow2"
  expect_term 1 "$W/termination-log" "$BACKING_MESSAGE"
  [[ ! -e $W/data/disk.img ]] || fail "disk.img written for a refused image"
  [[ -z $(ls -A "$W/data") ]] || fail "leftovers in /data: $(ls -A "$W/data")"
}

# --- 5. registry node pull: init container, containerDisk server, importer in one pod ------------
t_registry_node_pull() {
  # the containerDisk image as users build it (KubeVirt docs): FROM scratch, the disk in /disk/
  mkdir -p "$W/cdisk"
  cp "$IN/disk.qcow2" "$W/cdisk/fedora.qcow2"
  printf '%s\n' 'FROM scratch' 'ADD --chown=107:107 fedora.qcow2 /disk/' \
    'ENV INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small PREFERENCE_KUBEVIRT_IO_DEFAULT_PREFERENCE=fedora' \
    > "$W/cdisk/Containerfile"
  "${PODMAN[@]}" build --pull=never "${ULIMITS[@]}" -t localhost/cdi-import/containerdisk:test \
    -f "$W/cdisk/Containerfile" "$W/cdisk" > "$W/_meta/cdisk-build.out" 2>&1 ||
    { cat "$W/_meta/cdisk-build.out" >&2; fail "containerDisk build failed"; }
  at_exit "${PODMAN[@]}" rmi -f localhost/cdi-import/containerdisk:test
  pod_create cdi-image-test-nodepull
  emptydir "$W/shared"
  volume_dir "$W/data"
  termination_file "$W/termination-log"
  termination_file "$W/server-termination-log"
  # init container (makeImporterInitContainersSpec): the importer image, command sh -c cp ...
  kube_run init --pod cdi-image-test-nodepull "${KUBE_SC[@]}" -v "$W/shared:/shared" \
    --entrypoint '["sh","-c","cp /usr/bin/cdi-containerimage-server /shared/server"]' -- "$IMPORTER"
  ((LAST_RC == 0)) || { show; fail "init container: exit $LAST_RC"; }
  [[ -x $W/shared/server ]] || fail "/shared/server was not copied"
  # containers start together: the server (containerDisk image, CDI's command) and the importer
  "${PODMAN[@]}" run -d --name cdi-image-test-server --pod cdi-image-test-nodepull --pull=never "${ULIMITS[@]}" \
    "${KUBE_SC[@]}" -v "$W/shared:/shared" -v "$W/server-termination-log:/dev/termination-log" \
    --entrypoint '["/shared/server","-p","8100","-image-dir","/disk","-ready-file","/shared/ready","-done-file","/shared/done"]' \
    localhost/cdi-import/containerdisk:test > "$W/_meta/server.id" 2> "$W/_meta/server-start.err" ||
    { cat "$W/_meta/server-start.err" >&2; fail "server container did not start"; }
  at_exit "${PODMAN[@]}" rm -f cdi-image-test-server
  # setRegistryNodeImportEnvVars: source http, endpoint http://localhost:8100/disk.img, pull method node
  import_env IMPORTER_SOURCE=http IMPORTER_ENDPOINT=http://localhost:8100/disk.img IMPORTER_PULL_METHOD=node \
    IMPORTER_READY_FILE=/shared/ready IMPORTER_DONE_FILE=/shared/done
  kube_run import --pod cdi-image-test-nodepull "${KUBE_SC[@]}" "${ENV_ARGS[@]}" -v "$W/data:/data" \
    -v "$W/shared:/shared" -v "$W/termination-log:/dev/termination-log" -- "$IMPORTER" -v=1
  local import_rc=$LAST_RC
  ctr_wait cdi-image-test-server 30
  "${PODMAN[@]}" logs cdi-image-test-server > "$W/_meta/server.err" 2>&1 || true
  ((LAST_RC == 0)) || { show; fail "server container: exit $LAST_RC (expected 0 once the done file exists)"; }
  LAST_RC=$import_rc
  expect_term 0 "$W/termination-log" '{"scratchSpaceRequired":false,"preallocationApplied":false,"labels":{"instancetype.kubevirt.io/default-instancetype":"u1.small","preference.kubevirt.io/default-preference":"fedora"},"message":"Import Complete"}'
  assert_raw_prefix "$IN/disk.qcow2" "$W/data/disk.img" "$USABLE_64MI"
}

# --- 6. upload server: TLS from the secret files, /healthz, upload, restart on the same port ----
# upload_certs DIR: the cert secret as the controller fills it: tls.crt/tls.key (server, signed by
# the upload-server CA), ca.crt (the client CA); a client certificate CN=CLIENT_NAME from that CA.
upload_certs() {
  local d=$1 ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  mkdir -p "$d/secret" "$d/client"
  openssl req -x509 "${ec[@]}" -keyout "$d/server-ca.key" -out "$d/server-ca.crt" -days 30 -subj "/CN=cdi-uploadserver-signer" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -x509 "${ec[@]}" -keyout "$d/client-ca.key" -out "$d/secret/ca.crt" -days 30 -subj "/CN=cdi-uploadserver-client-signer" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -new "${ec[@]}" -keyout "$d/secret/tls.key" -out "$d/tls.csr" -subj "/CN=cdi-upload-dv" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth" > "$d/tls.ext"
  openssl x509 -req -in "$d/tls.csr" -CA "$d/server-ca.crt" -CAkey "$d/server-ca.key" -CAcreateserial \
    -out "$d/secret/tls.crt" -days 30 -extfile "$d/tls.ext" 2>/dev/null
  openssl req -new "${ec[@]}" -keyout "$d/client/tls.key" -out "$d/client.csr" -subj "/CN=client.upload-server.cdi.kubevirt.io" 2>/dev/null
  printf '%s\n' "extendedKeyUsage=clientAuth" > "$d/client.ext"
  openssl x509 -req -in "$d/client.csr" -CA "$d/secret/ca.crt" -CAkey "$d/client-ca.key" -CAcreateserial \
    -out "$d/client/tls.crt" -days 30 -extfile "$d/client.ext" 2>/dev/null
  # a Secret volume: files 0644 (defaultMode), group fsGroup
  chmod 0644 "$d/secret/"*; chgrp -R 107 "$d/secret"
}

# upload_start NAME: the upload-server container of the pod, detached; UP_READY_SECS = time from
# podman run to the first 200 of the readiness probe (GET https://:8443/healthz).
upload_start() {
  local name=$1 t0 i
  t0=$EPOCHREALTIME
  "${PODMAN[@]}" run -d --name "$name" --pod cdi-image-test-upload --pull=never "${ULIMITS[@]}" "${KUBE_SC[@]}" \
    -e TLS_KEY_FILE=/etc/tls/tls.key -e TLS_CERT_FILE=/etc/tls/tls.crt -e CLIENT_CERT_FILE=/etc/tls/ca.crt \
    -e FILESYSTEM_OVERHEAD=$FS_OVERHEAD -e UPLOAD_IMAGE_SIZE=64Mi -e CLIENT_NAME=client.upload-server.cdi.kubevirt.io \
    -e PREALLOCATION=false -e TLS_CIPHERS="$INTERMEDIATE_CIPHERS" -e TLS_MIN_VERSION=VersionTLS12 \
    -v "$W/certs/secret:/etc/tls:ro" -v "$W/data:/data" -v "$W/termination-log:/dev/termination-log" \
    "$UPLOADSERVER" -v=1 > "$W/_meta/$name.id" 2> "$W/_meta/$name-start.err" ||
    { cat "$W/_meta/$name-start.err" >&2; fail "upload server container did not start"; }
  at_exit "${PODMAN[@]}" rm -f "$name"
  for ((i = 0; i < 300; i++)); do
    if [[ $(in_pod curl -s -o /dev/null -w '%{http_code}' --cacert "$W/certs/server-ca.crt" https://127.0.0.1:8443/healthz) == 200 ]]; then
      UP_READY_SECS=$(echo "$EPOCHREALTIME - $t0" | bc)
      return 0
    fi
    [[ $("${PODMAN[@]}" inspect --format '{{.State.Status}}' "$name") == running ]] || break
    sleep 0.05
  done
  "${PODMAN[@]}" logs "$name" >&2 || true
  fail "upload server $name never answered /healthz"
}

# upload FILE: POST /v1beta1/upload (the upload proxy's sync path) with the client certificate.
upload() {
  in_pod curl -s -o "$W/_meta/upload.body" -w '%{http_code}' --cacert "$W/certs/server-ca.crt" \
    --cert "$W/certs/client/tls.crt" --key "$W/certs/client/tls.key" --data-binary @"$1" \
    https://127.0.0.1:8443/v1beta1/upload
}

t_upload_server() {
  upload_certs "$W/certs"
  pod_create cdi-image-test-upload
  volume_dir "$W/data"
  termination_file "$W/termination-log"
  upload_start cdi-image-test-up1
  measure "uploadserver: podman run -> /healthz 200: ${UP_READY_SECS} s"
  local code
  code=$(in_pod curl -s -o /dev/null -w '%{http_code}' --cacert "$W/certs/server-ca.crt" --data-binary @"$IN/disk.qcow2" \
    https://127.0.0.1:8443/v1beta1/upload)
  [[ $code == 401 ]] || fail "upload without a client certificate: HTTP $code, expected 401"
  code=$(upload "$IN/disk.qcow2")
  [[ $code == 200 ]] || { cat "$W/_meta/upload.body" >&2; fail "upload: HTTP $code"; }
  ctr_wait cdi-image-test-up1 30
  "${PODMAN[@]}" logs cdi-image-test-up1 > "$W/_meta/up1.err" 2>&1 || true
  expect_term 0 "$W/termination-log" '{"preallocationApplied":false,"message":"Upload Complete"}'
  assert_raw_prefix "$IN/disk.qcow2" "$W/data/disk.img" "$USABLE_64MI"
  # a restart right after, in the same pod (same network namespace, port 8443 just closed, its
  # connections in TIME_WAIT): must listen again at once, and take another upload
  rm -f "$W/data/disk.img"; termination_file "$W/termination-log"
  upload_start cdi-image-test-up2
  measure "uploadserver: restart on the same port -> /healthz 200: ${UP_READY_SECS} s"
  code=$(upload "$IN/disk.raw.xz")
  [[ $code == 200 ]] || { cat "$W/_meta/upload.body" >&2; fail "upload after restart: HTTP $code"; }
  ctr_wait cdi-image-test-up2 30
  "${PODMAN[@]}" logs cdi-image-test-up2 > "$W/_meta/up2.err" 2>&1 || true
  expect_term 0 "$W/termination-log" '{"preallocationApplied":false,"message":"Upload Complete"}'
  assert_raw_prefix "$IN/source.raw" "$W/data/disk.img" "$USABLE_64MI"
}

# --- 7. size detection (pvc-clone-controller makeSizeDetectionContainerSpec) --------------------
t_image_size_detection() {
  volume_dir "$W/data"
  cp "$IN/disk.qcow2" "$W/data/disk.img"; chgrp 107 "$W/data/disk.img"; chmod 0660 "$W/data/disk.img"
  termination_file "$W/termination-log"
  kube_run size "${KUBE_SC[@]}" --network none -v "$W/data:/data" -v "$W/termination-log:/dev/termination-log" \
    --entrypoint '["/usr/bin/cdi-image-size-detection"]' -- "$IMPORTER" -image-path /data/disk.img
  expect_term 0 "$W/termination-log" "$((32 * MIB))"
  # ErrInvalidFile (2): the image cannot be read; ErrBadArguments (1): no -image-path
  rm -f "$W/data/disk.img"; termination_file "$W/termination-log"
  kube_run size2 "${KUBE_SC[@]}" --network none -v "$W/data:/data" -v "$W/termination-log:/dev/termination-log" \
    --entrypoint '["/usr/bin/cdi-image-size-detection"]' -- "$IMPORTER" -image-path /data/disk.img
  ((LAST_RC == 2)) || { show; fail "missing image: exit $LAST_RC, expected 2 (ErrInvalidFile)"; }
  kube_run size3 "${KUBE_SC[@]}" --network none -v "$W/data:/data" -v "$W/termination-log:/dev/termination-log" \
    --entrypoint '["/usr/bin/cdi-image-size-detection"]' -- "$IMPORTER"
  ((LAST_RC == 1)) || { show; fail "no -image-path: exit $LAST_RC, expected 1 (ErrBadArguments)"; }
}

# --- 8. source update poller (dataimportcron-controller InitPollerPod) --------------------------
t_source_update_poller() {
  # the registry: a containerDisk pushed by podman, its manifest digest read back over the API
  registry_start "$W/registry" plain || fail "registry did not start"
  at_exit kill "${REGISTRY_PIDS[@]}"
  mkdir -p "$W/cdisk"
  cp "$IN/disk.qcow2" "$W/cdisk/disk.qcow2"
  printf '%s\n' 'FROM scratch' 'ADD --chown=107:107 disk.qcow2 /disk/' > "$W/cdisk/Containerfile"
  "${PODMAN[@]}" build --pull=never "${ULIMITS[@]}" -t localhost/cdi-import/poll-disk:test \
    -f "$W/cdisk/Containerfile" "$W/cdisk" > "$W/_meta/cdisk-build.out" 2>&1 || fail "containerDisk build failed"
  at_exit "${PODMAN[@]}" rmi -f localhost/cdi-import/poll-disk:test
  "${PODMAN[@]}" push --tls-verify=false localhost/cdi-import/poll-disk:test \
    "docker://127.0.0.1:$REGISTRY_PORT/kubevirt/fedora:latest" > "$W/_meta/push.out" 2>&1 ||
    { cat "$W/_meta/push.out" >&2; fail "podman push failed"; }
  local digest
  digest=$(curl -sI -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "$REGISTRY_URL/v2/kubevirt/fedora/manifests/latest" | tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
  [[ $digest == sha256:* ]] || fail "no manifest digest from the registry"
  # the API server stand-in and the service-account volume kubelet mounts
  printf '{"apiVersion":"cdi.kubevirt.io/v1beta1","kind":"DataImportCron","metadata":{"name":"fedora-cron","namespace":"golden-images","uid":"cron-uid-1","resourceVersion":"1","annotations":{"cdi.kubevirt.io/storage.import.sourceDesiredDigest":"sha256:%s"}}}' \
    "$(printf '0%.0s' {1..64})" > "$W/cron.json"
  python3 "$HERE/../support/kube_api.py" --cert "$W/registry/certs/server.crt" --key "$W/registry/certs/server.key" \
    --log "$W/api.log" --port-file "$W/api.port" --object "$W/cron.json" --ns golden-images --name fedora-cron \
    </dev/null >/dev/null 2>"$W/_meta/api.err" &
  local api_pid=$! i
  at_exit kill "$api_pid"
  for ((i = 0; i < 200; i++)); do [[ -s $W/api.port ]] && break; sleep 0.05; done
  [[ -s $W/api.port ]] || fail "API stand-in did not start"
  mkdir -p "$W/sa"
  cp "$W/registry/certs/ca.crt" "$W/sa/ca.crt"
  echo -n cdi > "$W/sa/namespace"
  echo -n "eyJhbGciOiJSUzI1NiJ9.test-token.for-cdi-cronjob" > "$W/sa/token"
  chmod 0644 "$W/sa/"*
  termination_file "$W/termination-log"
  # CronJob pod: command as the controller sets it, no runAsUser (image USER 1001), insecure registry
  kube_run poller --network host --cap-drop ALL --security-opt no-new-privileges \
    -e KUBERNETES_SERVICE_HOST=127.0.0.1 -e KUBERNETES_SERVICE_PORT="$(cat "$W/api.port")" -e INSECURE_TLS=true \
    -v "$W/sa:/var/run/secrets/kubernetes.io/serviceaccount:ro" -v "$W/termination-log:/dev/termination-log" \
    --entrypoint '["/usr/bin/cdi-source-update-poller","-ns","golden-images","-cron","fedora-cron","-url","docker://127.0.0.1:'"$REGISTRY_PORT"'/kubevirt/fedora:latest"]' \
    -- "$IMPORTER"
  ((LAST_RC == 0)) || { show; cat "$W/api.log" >&2; fail "poller: exit $LAST_RC"; }
  python3 "$HERE/check_poller_requests.py" "$W/api.log" "$digest" || { show; fail "the poller's API requests are not CDI's"; }
}

# --- 9. cloner ----------------------------------------------------------------------------------
# cloner_startup.sh → cdi-cloner over a filesystem volume, to a mutual-TLS receiver on the host
# (tests/support/clone_receiver.py); the snappy body decoded with python-snappy, the tar extracted.
t_cloner_filesystem() {
  local c=$W/certs ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes) sup=$HERE/../support
  mkdir -p "$c"
  openssl req -x509 "${ec[@]}" -keyout "$c/ca.key" -out "$c/ca.crt" -days 30 -subj "/CN=ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  local n
  for n in server client; do
    openssl req -new "${ec[@]}" -keyout "$c/$n.key" -out "$c/$n.csr" -subj "/CN=$n" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=%s\n' "$([[ $n == server ]] && echo serverAuth || echo clientAuth)" > "$c/$n.ext"
    openssl x509 -req -in "$c/$n.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial -out "$c/$n.crt" \
      -days 30 -extfile "$c/$n.ext" 2>/dev/null
  done
  mkdir -p "$W/vol/lost+found"
  truncate -s 32M "$W/vol/disk.img"
  dd if=/dev/urandom of="$W/vol/disk.img" bs=64K count=8 conv=notrunc status=none
  chmod -R a+rX "$W/vol"
  /usr/bin/python3 "$sup/clone_receiver.py" --cert "$c/server.crt" --key "$c/server.key" --ca "$c/ca.crt" \
    --out "$W/body" > "$W/_meta/recv.log" 2>&1 &
  local recv=$! port=
  for _ in $(seq 100); do
    port=$(grep -oE 'listening on port [0-9]+' "$W/_meta/recv.log" | awk '{print $4}' || true)
    [[ -n $port ]] && break
    sleep 0.05
  done
  [[ -n $port ]] || { kill "$recv"; fail "receiver did not start"; }
  termination_file "$W/termination-log"
  kube_run cloner "${KUBE_SC[@]}" --network host -e VOLUME_MODE=filesystem -e MOUNT_POINT=/var/run/cdi/clone/source \
    -e PREALLOCATION=false -e OWNER_UID=uid-1 -e "CLIENT_KEY=$(cat "$c/client.key")" -e "CLIENT_CERT=$(cat "$c/client.crt")" \
    -e "SERVER_CA_CERT=$(cat "$c/ca.crt")" -e "UPLOAD_URL=https://127.0.0.1:$port/v1beta1/upload" \
    -e CDI_IMPORT_METRICS_LISTEN=127.0.0.1:0 \
    -v "$W/vol:/var/run/cdi/clone/source:ro" -v "$W/termination-log:/dev/termination-log" -- "$CLONER"
  kill "$recv" 2>/dev/null || true
  expect_term 0 "$W/termination-log" "Clone Complete"
  [[ $(cat "$W/body.type") == filesystem-clone ]] || { show; fail "content type"; }
  /usr/bin/python3 "$sup/snappy_interop.py" decompress "$W/body" "$W/got.tar" || fail "body is not snappy"
  mkdir -p "$W/x"
  tar -xf "$W/got.tar" -C "$W/x" || fail "not a tar"
  cmp "$W/vol/disk.img" "$W/x/disk.img" || fail "disk.img differs"
  [[ ! -e $W/x/lost+found ]] || fail "lost+found was sent"
  # missing env: CDI's words, no termination message
  termination_file "$W/termination-log"
  kube_run cloner2 "${KUBE_SC[@]}" --network none -e VOLUME_MODE=filesystem -e MOUNT_POINT=/var/run/cdi/clone/source \
    -e PREALLOCATION=false -v "$W/vol:/var/run/cdi/clone/source:ro" -v "$W/termination-log:/dev/termination-log" -- "$CLONER"
  expect_term 2 "$W/termination-log" ""
  grep -q "Error getting env var OWNER_UID" "$W/_meta/cloner2.err" || { show; fail "missing env message"; }
}

# --- image configuration: entrypoints, user, workdir as CDI ships them --------------------------
t_image_config() {
  local f='{{json .Config.Entrypoint}} {{.Config.User}} {{.Config.WorkingDir}}' got
  got=$("${PODMAN[@]}" image inspect --format "$f" "$IMPORTER")
  [[ $got == '["/usr/bin/cdi-importer","-alsologtostderr"] 1001 /' || $got == '["/usr/bin/cdi-importer","-alsologtostderr"] 1001 ' ]] || fail "importer: $got"
  got=$("${PODMAN[@]}" image inspect --format "$f" "$UPLOADSERVER")
  [[ $got == '["/usr/bin/cdi-uploadserver","-alsologtostderr"] 1001 /' || $got == '["/usr/bin/cdi-uploadserver","-alsologtostderr"] 1001 ' ]] || fail "uploadserver: $got"
  got=$("${PODMAN[@]}" image inspect --format "$f" "$CLONER")
  [[ $got == '["/usr/bin/cloner_startup.sh"] 1001 /home/cdi-cloner' ]] || fail "cloner: $got"
  # the tool entry points; the containerimage server a real static file
  kube_run ls --network none --entrypoint '["sh","-c","ls -l /usr/bin/cdi-*; test -f /usr/bin/cdi-containerimage-server && ! test -L /usr/bin/cdi-containerimage-server"]' -- "$IMPORTER"
  ((LAST_RC == 0)) || { show; fail "tool entry points missing"; }
  local n
  for n in cdi-importer cdi-image-size-detection cdi-source-update-poller; do
    grep -q "/usr/bin/$n -> cdi-import" "$W/_meta/ls.out" || { show; fail "no /usr/bin/$n symlink"; }
  done
  kube_run lscloner --network none --entrypoint '["sh","-c","ls -l /usr/bin/cdi-cloner /usr/bin/tar; command -v blockdev du"]' -- "$CLONER"
  ((LAST_RC == 0)) || { show; fail "cloner image: cdi-cloner, tar, blockdev or du missing"; }
  grep -q "/usr/bin/cdi-cloner -> cdi-import" "$W/_meta/lscloner.out" || { show; fail "no /usr/bin/cdi-cloner symlink"; }
}

# The termination message of a refused backing-file qcow2 (the same binary's pod mode outside a
# container gives these bytes; tests/e2e/test_bad_inputs.sh checks the refusal itself).
BACKING_MESSAGE="Unable to process data: $H/overlay.qcow2: qcow2: image has a backing file; flatten it first (qemu-img convert or rebase)"
# CDI's intermediate TLS profile, as the upload controller passes it (cdiv1.TLSProfiles)
INTERMEDIATE_CIPHERS=TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,ECDHE-ECDSA-AES128-GCM-SHA256,ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-AES256-GCM-SHA384,ECDHE-RSA-AES256-GCM-SHA384,ECDHE-ECDSA-CHACHA20-POLY1305,ECDHE-RSA-CHACHA20-POLY1305,DHE-RSA-AES128-GCM-SHA256,DHE-RSA-AES256-GCM-SHA384

run_test image_config t_image_config
run_test http_qcow2_filesystem t_http_qcow2_filesystem
run_test http_raw_xz_block t_http_raw_xz_block
run_test blank t_blank
run_test http_404 t_http_404
run_test backing_file_refused t_backing_file_refused
run_test registry_node_pull t_registry_node_pull
run_test upload_server t_upload_server
run_test image_size_detection t_image_size_detection
run_test source_update_poller t_source_update_poller
run_test cloner_filesystem t_cloner_filesystem
run_cleanup
echo "measurements (also in $MEASURE):"
sed 's/^/  /' "$MEASURE"
finish
