#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Pod mode with IMPORTER_SOURCE=registry: a real docker-registry on 127.0.0.1 (plain HTTP, allowed by
# INSECURE_TLS), images built here as OCI layouts and pushed; the termination message carries the
# labels mapped from the image's *KUBEVIRT_IO_* env, and the architecture comes from
# IMPORTER_REGISTRY_IMAGE_ARCHITECTURE.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/../support/nginx.sh"
source "$E2E_DIR/../support/registry.sh"

POD=$(dirname "$CDI")/cdi-importer
if [[ ! -x $POD ]]; then ln -s "$CDI" "$T/cdi-importer"; POD=$T/cdi-importer; fi
SRV=$T/srv
L=$T/layout
mkdir -p "$SRV" "$L"
trap 'registry_stop_all; cleanup' EXIT
MK=$E2E_DIR/../support/make_oci_layout.py
QCOW=$IMG/qcow2-v3.qcow2
head -c $((4 * MIB)) "$IMG/source.raw" > "$T/small.raw"
mk() { /usr/bin/python3 "$MK" "$@" || { echo "make_oci_layout.py $* failed" >&2; exit 1; }; }
mk image "$L" labelled --env INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small \
  --env PREFERENCE_KUBEVIRT_IO_DEFAULT_PREFERENCE=fedora --env PATH=/bin --layer "gzip:disk/,disk/disk.img=$QCOW"
mk image "$L" amd64 --arch amd64 --layer "gzip:disk/,disk/disk.img=$QCOW"
mk image "$L" arm64 --arch arm64 --variant v8 --layer "gzip:disk/,disk/disk.img=$T/small.raw"
mk index "$L" multi amd64 arm64
registry_start "$SRV/plain" plain || { echo "registry did not start" >&2; exit 1; }
REG=127.0.0.1:$REGISTRY_PORT
for tag in labelled multi; do registry_push "$L" "$tag" "cd/img:$tag" || { echo "push of $tag failed" >&2; exit 1; }; done

pod() {
  R=$W/root
  rm -rf "$R"; mkdir -p "$R/data" "$R/dev"
  set +e
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$R" CDI_IMPORT_METRICS_LISTEN=off IMPORTER_SOURCE=registry \
    IMPORTER_CONTENTTYPE=kubevirt IMPORTER_IMAGE_SIZE= FILESYSTEM_OVERHEAD=0.06 PREALLOCATION=false INSECURE_TLS=true "$@" \
    timeout -k 5 "$CMD_TIMEOUT" "$POD" -v=1 > "$W/_meta/out" 2> "$W/_meta/err"
  LAST_RC=$?
  set -e
  echo "\$ cdi-importer $* -> exit $LAST_RC" >&2
}

expect_term() {
  ((LAST_RC == $1)) || { show_output; fail "exit $LAST_RC, expected $1"; }
  local got
  got=$(cat "$R/dev/termination-log")
  [[ $got == "$2" ]] || { show_output; fail "termination log: '$got', expected '$2'"; }
}

t_registry_labels() {
  pod IMPORTER_ENDPOINT="docker://$REG/cd/img:labelled"
  expect_term 0 '{"scratchSpaceRequired":false,"preallocationApplied":false,"labels":{"instancetype.kubevirt.io/default-instancetype":"u1.small","preference.kubevirt.io/default-preference":"fedora"},"message":"Import Complete"}'
  assert_same_as_qemu "$QCOW" "$R/data/disk.img"
}

t_registry_architecture() {
  pod IMPORTER_ENDPOINT="docker://$REG/cd/img:multi" IMPORTER_REGISTRY_IMAGE_ARCHITECTURE=arm64
  expect_term 0 '{"scratchSpaceRequired":false,"preallocationApplied":false,"message":"Import Complete"}'
  assert_same_as_qemu "$T/small.raw" "$R/data/disk.img" raw
}

t_registry_archive_refused() {
  pod IMPORTER_ENDPOINT="docker://$REG/cd/img:labelled" IMPORTER_CONTENTTYPE=archive
  ((LAST_RC == 1)) || fail "exit $LAST_RC"
  [[ ! -e $R/dev/termination-log ]] || fail "termination log written"
  grep -q "Unsupported content type archive when importing from registry" "$W/_meta/err" || fail "no log line"
}

run_test registry_labels t_registry_labels
run_test registry_architecture t_registry_architecture
run_test registry_archive_refused t_registry_archive_refused
finish
