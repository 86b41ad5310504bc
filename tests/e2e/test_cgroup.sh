#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Imports under real cgroup limits, each in a cgroup made for it by tests/support/cgroup_run.py
# (cgroup v1 where the controller has its own hierarchy, as on this CI machine; v2 otherwise):
#  - a 1-CPU quota (v1 cpu.cfs_quota_us = cpu.cfs_period_us, v2 cpu.max "100000 100000") leaves
#    exactly one xz decompression thread, two CPUs two;
#  - inside a 64 MiB memory cgroup, with the output on a loop-mounted ext4 (tmpfs pages are
#    charged to the cgroup and cannot be reclaimed: not a fair target), an import of a few
#    hundred MiB finishes byte-exact (cmp with `xz -dc`) and nothing is OOM-killed; the same for
#    uploads with the upload server itself inside the cgroup (sync and async routes).
# Threads are counted by the harness: the most threads the cgroup held at once (v1 tasks, v2
# cgroup.threads), sampled every 10 ms. Needs root.
source "$(dirname "$0")/lib.sh"

CGROUP_RUN=$E2E_DIR/../support/cgroup_run.py
SHARED=$T/shared
DISK_MIB=256

# The memory limit of the memory tests: 64 MiB. A sanitizer build cannot fit it (ASan's shadow
# memory and its 256 MiB quarantine are part of the process), so for such a binary (scripts/test.sh
# runs this script again with the ASan+UBSan build) the same imports and checks run in a 1 GiB
# cgroup: the code paths under the sanitizers; the 64 MiB fit itself is asserted by the Release run.
if [[ $(ldd "$CDI" 2>/dev/null) == *libasan* || $(ldd "$CDI" 2>/dev/null) == *libubsan* ]]; then
  MEM=1G MEM_BYTES=$((1024 * MIB)) MEM_TEXT="1.0 GiB"
  echo "test_cgroup: sanitizer build: memory tests in a 1 GiB cgroup (the Release run checks 64 MiB)" >&2
else
  MEM=64M MEM_BYTES=$((64 * MIB)) MEM_TEXT="64.0 MiB"
fi

# disk_images: $SHARED/disk.raw, a sparse-ish pseudo-random disk of $DISK_MIB MiB (64 KiB of random
# bytes every 4 MiB, holes between), and its xz forms: disk.multiblock.xz as `xz -T2
# --block-size=32MiB` writes it (8 blocks with their sizes in the headers: liblzma's threaded
# decoder runs them on worker threads) and disk.xz as `xz -T1` does (one block without sizes:
# decoded on the calling thread). Made once per script run.
disk_images() {
  [[ -f $SHARED/done ]] && return 0
  mkdir -p "$SHARED"
  local raw=$SHARED/disk.raw i
  truncate -s "${DISK_MIB}M" "$raw"
  for ((i = 0; i < DISK_MIB / 4; i++)); do
    dd if=/dev/urandom of="$raw" bs=64K count=1 seek=$((i * 64)) conv=notrunc status=none
  done
  xz -T2 --block-size=32MiB -c "$raw" > "$SHARED/disk.multiblock.xz"
  xz -T1 -c "$raw" > "$SHARED/disk.xz"
  local blocks
  blocks=$(xz --robot -l "$SHARED/disk.multiblock.xz" | awk '$1 == "totals" {print $3}')
  ((blocks == DISK_MIB / 32)) || fail "disk.multiblock.xz has $blocks blocks, expected $((DISK_MIB / 32))"
  blocks=$(xz --robot -l "$SHARED/disk.xz" | awk '$1 == "totals" {print $3}')
  ((blocks == 1)) || fail "disk.xz has $blocks blocks, expected 1"
  touch "$SHARED/done"
}

# data_images: $SHARED/data.raw, a $DATA_MIB MiB disk shaped like a used cloud image (per 8 MiB:
# 2 MiB of random bytes, 2 MiB of log-like text, 4 MiB of holes: half of it data, so the target's
# page cache is hundreds of MiB unless it is dropped), and every input format made from it.
DATA_MIB=384
data_images() {
  [[ -f $SHARED/data.done ]] && return 0
  mkdir -p "$SHARED"
  local raw=$SHARED/data.raw
  python3 - "$raw" "$DATA_MIB" <<'PY'
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
MiB = 1 << 20
line = b"Dec  2 05:40:00 node kernel: [123456.789012] EXT4-fs (vda1): mounted filesystem with ordered data mode\n"
text = (line * (2 * MiB // len(line) + 1))[:2 * MiB]
with open(path, "wb") as f:
    f.truncate(mib * MiB)
    for i in range(mib // 8):
        f.seek(i * 8 * MiB)
        f.write(os.urandom(2 * MiB))
        f.write(text[i % 97:] + text[:i % 97])
PY
  pigz -p 2 -c "$raw" > "$SHARED/data.raw.gz"
  zstd -q -T2 -c "$raw" > "$SHARED/data.raw.zst"
  qemu-img convert -q -f raw -O qcow2 "$raw" "$SHARED/data.qcow2"
  qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zlib "$raw" "$SHARED/data.zlib.qcow2"
  qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zstd "$raw" "$SHARED/data.zstd.qcow2"
  xz -0 -T2 --block-size=16MiB -c "$SHARED/data.qcow2" > "$SHARED/data.qcow2.xz"
  xz -0 -T2 --block-size=32MiB -c "$raw" > "$SHARED/data.raw.xz"
  qemu-img convert -q -f raw -O vmdk -o subformat=monolithicSparse "$raw" "$SHARED/data.vmdk"
  touch "$SHARED/data.done"
}

# cdi_in_cgroup CGROUP_RUN_OPTIONS... -- CDI_ARGS...: like `cdi`, inside a fresh cgroup; the
# harness' JSON report lands in $W/_meta/cgroup.json (see report below).
cdi_in_cgroup() {
  local opts=()
  while [[ $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  snapshot
  set +e
  timeout -k 5 "$CMD_TIMEOUT" python3 "$CGROUP_RUN" "${opts[@]}" --report "$W/_meta/cgroup.json" -- \
    "$CDI" "$@" > "$W/_meta/out" 2> "$W/_meta/err"
  LAST_RC=$?
  set -e
  echo "\$ cgroup_run ${opts[*]} -- cdi-import $* -> exit $LAST_RC" >&2
  echo "  cgroup: $(cat "$W/_meta/cgroup.json" 2>/dev/null)" >&2
  return 0
}

# report KEY: a field of the last cgroup report.
report() { jq -r ".$1" "$W/_meta/cgroup.json"; }

# expected_layout CONTROLLER: v1 when the controller has its own v1 hierarchy, else v2.
expected_layout() {
  if awk -v c="$1" '$0 ~ / - cgroup cgroup / { n = split($NF, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) f = 1 }
                     END { exit !f }' /proc/self/mountinfo; then
    echo v1
  else
    echo v2
  fi
}

# assert_import_ok: exit 0, not killed, no OOM kill in the cgroup.
assert_import_ok() {
  check_success
  [[ $(report signal) == null ]] || fail "cdi-import was killed by signal $(report signal)"
  [[ $(report oom_kills) == 0 || $(report oom_kills) == null ]] || fail "$(report oom_kills) OOM kill(s) in the cgroup"
}

t_cpu_quota_leaves_one_decompression_thread() {
  require_root
  disk_images
  local cpus base want
  cpus=$(nproc)
  # The same copy without decompression: the threads every import has (main, writer).
  cdi_in_cgroup --cpus 1 -- --url "$SHARED/disk.raw" --dest "$W/dest/plain.img" --progress none
  check_success
  [[ $(report layout) == "$(expected_layout cpu)" ]] || fail "cgroup layout $(report layout), expected $(expected_layout cpu)"
  base=$(report max_threads)
  ((base >= 1)) || fail "no thread seen in the cgroup"
  # Under a 1-CPU quota: one liblzma worker thread (one CPU: the blocks are not decoded in parallel).
  cdi_in_cgroup --cpus 1 -- --url "$SHARED/disk.multiblock.xz" --dest "$W/dest/one.img" --progress none -v
  check_success
  assert_same_bytes "$W/dest/one.img" "$SHARED/disk.raw"
  (($(report max_threads) == base + 1)) ||
    fail "under a 1-CPU quota: $(report max_threads) threads, expected $base + 1 decompression thread"
  ! grep -q "decoded in parallel" "$W/_meta/err" || { show_output; fail "blocks decoded in parallel on one CPU"; }
  # Under a 2-CPU quota: as many liblzma workers as CPUs, up to 2 (the reference for the drop above).
  want=$((cpus < 2 ? cpus : 2))
  cdi_in_cgroup --cpus 2 -- --url "$SHARED/disk.multiblock.xz" --dest "$W/dest/two.img" --progress none --xz-decoder stream
  check_success
  assert_same_bytes "$W/dest/two.img" "$SHARED/disk.raw"
  (($(report max_threads) == base + want)) ||
    fail "under a 2-CPU quota on $cpus CPUs: $(report max_threads) threads, expected $base + $want"
  # The block decoder (the default for a local file of several blocks): as many workers as CPUs,
  # the calling thread being one of them, no writer thread (the stream decoder that detection
  # opened is gone by then: its liblzma threads are the most seen, while it peeks).
  ((cpus >= 2)) || return 0
  rm -f "$W/dest/two.img"
  cdi_in_cgroup --cpus 2 -- --url "$SHARED/disk.multiblock.xz" --dest "$W/dest/two.img" --progress none -v
  check_success
  assert_same_bytes "$W/dest/two.img" "$SHARED/disk.raw"
  grep -q "plan: xz: $((DISK_MIB / 32)) blocks in 1 stream(s), decoded in parallel on 2 workers" "$W/_meta/err" ||
    { show_output; fail "the blocks were not decoded on 2 workers"; }
  (($(report max_threads) <= base + want)) ||
    fail "block decoder under a 2-CPU quota: $(report max_threads) threads, more than the stream decoder's $base + $want"
}

t_single_block_xz_in_64mib() {
  require_root
  disk_images
  ext4_mount "$W/dest/fs" $((DISK_MIB + 64))
  cdi_in_cgroup --memory "$MEM" -- --url "$SHARED/disk.xz" --dest "$W/dest/fs/disk.img" --progress none
  assert_import_ok
  [[ $(report layout) == "$(expected_layout memory)" ]] ||
    fail "cgroup layout $(report layout), expected $(expected_layout memory)"
  (($(report peak) <= MEM_BYTES)) || fail "peak $(report peak) above the limit"
  (($(size_of "$W/dest/fs/disk.img") == DISK_MIB * MIB)) || fail "size $(size_of "$W/dest/fs/disk.img")"
  cmp <(xz -dc "$SHARED/disk.xz") "$W/dest/fs/disk.img" >&2 || fail "the import differs from xz -dc"
}

# multi-block xz (32 MiB blocks): unconstrained, liblzma's threaded decoder keeps a block per
# thread (~100 MiB); in a 64 MiB cgroup the budget read from the cgroup sizes it down to fit
# (--xz-decoder stream); the block decoder (the default for a local file) needs a dictionary and
# two small buffers per worker, so it keeps every CPU in the same cgroup
t_multiblock_xz_in_64mib() {   # t_multiblock_xz_in_64mib auto|stream
  require_root
  disk_images
  ext4_mount "$W/dest/fs" $((DISK_MIB + 64))
  cdi_in_cgroup --memory "$MEM" -- --url "$SHARED/disk.multiblock.xz" --dest "$W/dest/fs/disk.img" --progress none -v \
    --xz-decoder "$1"
  assert_import_ok
  grep -q "memory: .*$MEM_TEXT limit (cgroup" "$W/_meta/err" || { show_output; fail "the cgroup's limit was not read"; }
  (($(report peak) <= MEM_BYTES)) || fail "peak $(report peak) above the limit"
  cmp <(xz -dc "$SHARED/disk.multiblock.xz") "$W/dest/fs/disk.img" >&2 || fail "the import differs from xz -dc"
  if [[ $1 == auto && $(nproc) -ge 2 ]]; then
    grep -q "decoded in parallel on 2 workers" "$W/_meta/err" || { show_output; fail "not decoded on 2 workers in $MEM_TEXT"; }
  else
    ! grep -q "decoded in parallel" "$W/_meta/err" || { show_output; fail "decoded by blocks"; }
  fi
}

# in_64mib INPUT [ARGS...]: imports $SHARED/INPUT inside a 64 MiB memory cgroup onto a loop-mounted
# ext4; byte-exact with the source disk, no OOM kill, and the usage (page cache included) never
# reached the limit.
in_64mib() {
  local input=$1
  shift
  require_root
  data_images
  ext4_mount "$W/dest/fs" $((DATA_MIB + 64))
  mkdir -p "$W/dest/fs/scratch"
  cdi_in_cgroup --memory "$MEM" -- --url "$SHARED/$input" --dest "$W/dest/fs/disk.img" --progress none -v "$@"
  assert_import_ok
  # Page cache under control: the cgroup's usage never reached its limit (v1's max_usage_in_bytes
  # stops at the limit when reclaim had to run there; memory.failcnt stays 0 on this kernel even
  # then, so it is checked too but is not enough). Without the write-back drops it reaches 64 MiB.
  (($(report peak) < MEM_BYTES)) || fail "$input: usage reached the $MEM_TEXT limit (peak $(report peak))"
  (($(size_of "$W/dest/fs/disk.img") == DATA_MIB * MIB)) || fail "$input: size $(size_of "$W/dest/fs/disk.img")"
  cmp "$SHARED/data.raw" "$W/dest/fs/disk.img" >&2 || fail "$input: the import differs from the source disk"
  echo "  $input: peak $(( $(report peak) / MIB )) MiB, limit hit $(report failcnt) times" >&2
  # the page cache is under control: the cgroup never had to reclaim at its limit
  [[ $(report failcnt) == 0 ]] || fail "$input: the cgroup hit its limit $(report failcnt) times (memory.failcnt)"
}
t_raw_in_64mib() { in_64mib data.raw; }
t_raw_gz_in_64mib() { in_64mib data.raw.gz; }
t_raw_zst_in_64mib() { in_64mib data.raw.zst; }
t_qcow2_in_64mib() { in_64mib data.qcow2; }
t_qcow2_zlib_in_64mib() { in_64mib data.zlib.qcow2; }
t_qcow2_zstd_in_64mib() { in_64mib data.zstd.qcow2; }
t_qcow2_xz_in_64mib() { in_64mib data.qcow2.xz; }
# qemu-img converts it from the local file (cache=none on the target where O_DIRECT works)
t_vmdk_in_64mib() { in_64mib data.vmdk; }

# upload_in_64mib INPUT ROUTE: the upload server runs inside the 64 MiB memory cgroup (the pod's
# limit), curl streams $SHARED/INPUT to ROUTE; the server exits after the upload, as in CDI. The
# target on a loop-mounted ext4 is byte-exact with the source disk, nothing was OOM-killed, and
# the cgroup's usage (page cache included) never reached the limit.
upload_in_64mib() {
  local input=$1 route=$2 pid code rc=0 i
  require_root
  data_images
  ext4_mount "$W/dest/fs" $((DATA_MIB + 64))
  snapshot
  : > "$W/_meta/err"
  timeout -k 5 "$CMD_TIMEOUT" python3 "$CGROUP_RUN" --memory "$MEM" --report "$W/_meta/cgroup.json" -- \
    "$CDI" upload-server --insecure-http --listen 127.0.0.1:0 --dest "$W/dest/fs/disk.img" -v \
    > "$W/_meta/out" 2> "$W/_meta/err" &
  pid=$!
  register_pid "$pid"
  wait_server_port "$W/_meta/err" "$pid"
  code=$(curl -sS --max-time 300 -o "$W/_meta/body" -w '%{http_code}' -X POST -H 'Expect:' \
    -H 'Content-Type: application/octet-stream' --upload-file "$SHARED/$input" \
    "http://127.0.0.1:$PORT$route" || true)
  echo "  curl POST $route ($input) -> $code $(head -c 200 "$W/_meta/body")" >&2
  for i in $(seq 1200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  wait "$pid" || rc=$?
  LAST_RC=$rc
  echo "\$ cgroup_run --memory $MEM -- cdi-import upload-server ... -> exit $rc" >&2
  echo "  cgroup: $(cat "$W/_meta/cgroup.json" 2>/dev/null)" >&2
  [[ $code == 200 ]] || { show_output; fail "$route answered $code"; }
  assert_import_ok
  grep -q "upload complete" "$W/_meta/err" || { show_output; fail "no success line"; }
  grep -q "memory: .*$MEM_TEXT limit (cgroup" "$W/_meta/err" || { show_output; fail "the cgroup's limit was not read"; }
  (($(report peak) < MEM_BYTES)) || fail "$input: usage reached the $MEM_TEXT limit (peak $(report peak))"
  cmp "$SHARED/data.raw" "$W/dest/fs/disk.img" >&2 || fail "$input: the upload differs from the source disk"
  echo "  upload $input: peak $(( $(report peak) / MIB )) MiB" >&2
}
t_upload_qcow2_zstd_sync_in_64mib() { upload_in_64mib data.zstd.qcow2 /v1beta1/upload; }
t_upload_raw_zst_async_in_64mib() { upload_in_64mib data.raw.zst /v1beta1/upload-async; }
t_upload_qcow2_xz_sync_in_64mib() { upload_in_64mib data.qcow2.xz /v1beta1/upload; }
# multi-block xz (32 MiB blocks, as `xz -T2 --block-size=32MiB`): unconstrained the server's
# threaded xz decoder peaks at ~186 MiB (bench/results/cgroup.md); the budget sizes it to fit
t_upload_raw_xz_sync_in_64mib() { upload_in_64mib data.raw.xz /v1beta1/upload; }

run_test cpu_quota_leaves_one_decompression_thread t_cpu_quota_leaves_one_decompression_thread
run_test single_block_xz_in_64mib t_single_block_xz_in_64mib
run_test multiblock_xz_in_64mib t_multiblock_xz_in_64mib auto
run_test multiblock_xz_stream_in_64mib t_multiblock_xz_in_64mib stream
for t in raw raw_gz raw_zst qcow2 qcow2_zlib qcow2_zstd qcow2_xz vmdk; do
  run_test "${t}_in_64mib" "t_${t}_in_64mib"
done
run_test upload_qcow2_zstd_sync_in_64mib t_upload_qcow2_zstd_sync_in_64mib
run_test upload_raw_zst_async_in_64mib t_upload_raw_zst_async_in_64mib
run_test upload_qcow2_xz_sync_in_64mib t_upload_qcow2_xz_sync_in_64mib
run_test upload_raw_xz_sync_in_64mib t_upload_raw_xz_sync_in_64mib
finish
