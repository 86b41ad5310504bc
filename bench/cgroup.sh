#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/cgroup.sh: every import scenario run twice in the same bench run, unconstrained and inside
# a 64 MiB memory cgroup (issue 15), on a guest disk shaped like a used cloud image (45 %
# incompressible, 20 % text, 35 % holes: make_guest_raw in bench/lib.sh). The output lands on a
# loop-mounted ext4 (tmpfs pages are charged to the cgroup and cannot be reclaimed: not a fair
# target). Scenarios: raw, raw.gz, raw.xz single-block (`xz -T1`), raw.xz multi-block
# (`xz -T2 --block-size=32MiB`), raw.zst, qcow2 plain / zlib clusters / zstd clusters, qcow2.xz,
# vmdk (cdi-import hands it to qemu-img).
#
# Both runs go through tests/support/cgroup_run.py, so both are measured the same way: the
# "unconstrained" one in a cgroup whose limit (64 GiB) is above the machine's RAM, which
# cdi-import's budget reads as no limit, the other with memory.limit_in_bytes (v1) / memory.max
# (v2) = 64 MiB. Reported per run: wall time and peak RSS of cdi-import (/usr/bin/time inside the
# cgroup: the largest of cdi-import and its children, i.e. qemu-img for vmdk), the cgroup's max
# usage (v1 memory.max_usage_in_bytes, v2 memory.peak: page cache included), memory.failcnt (v2:
# memory.events "max") and OOM kills; the ratio constrained / unconstrained (goal <= 1.3) and
# whether peak RSS stays <= 64 MiB. Every output is compared with `cmp` against source.raw, which
# `qemu-img convert -O raw` of every container input (qcow2 x3, vmdk) was checked to reproduce when
# the inputs were made. Each run starts after removing the last output and a `sync`; cdi-import
# ends with the target fdatasync'ed, so the time includes the write-back.
#
#   Environment: BENCH_SIZE (MiB, or with a G/M suffix; default 2G), BENCH_RUNS (default 1; >1:
#   median time, largest RSS/usage), BENCH_DIR (default bench/.work-cgroup: the inputs are cached
#   there), BENCH_XZ_PRESET (default 0: xz -0, so that making the inputs takes minutes, not an
#   hour), BENCH_ONLY (a substring: run only matching scenarios), CDI_IMPORT (default
#   build/cmd/cdi-import/cdi-import). Needs root (cgroups, loop mount). Not run by CI.
#   Prints a markdown table on stdout; progress on stderr.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
size=${BENCH_SIZE:-2G}
case $size in
  *[Gg]) MIBS=$(( ${size%[Gg]} * 1024 )) ;;
  *[Mm]) MIBS=${size%[Mm]} ;;
  *) MIBS=$size ;;
esac
DIR=${BENCH_DIR:-$ROOT/bench/.work-cgroup}
CDI=${CDI_IMPORT:-$ROOT/build/cmd/cdi-import/cdi-import}
RUNS=${BENCH_RUNS:-1}
XZP=${BENCH_XZ_PRESET:-0}
ONLY=${BENCH_ONLY:-}
CGROUP_RUN=$ROOT/tests/support/cgroup_run.py
LIMIT=64M
LIMIT_BYTES=$((64 << 20))
[[ -x $CDI ]] || { echo "bench: $CDI not found" >&2; exit 1; }
((EUID == 0)) || { echo "bench: needs root (cgroups, loop mount)" >&2; exit 1; }
source "$ROOT/bench/lib.sh"
IMG=$DIR/img-${MIBS}m
mkdir -p "$IMG"
log() { echo "bench: $*" >&2; }
LOAD_BEFORE=$(uptime | sed 's/.*load average/load average/')

# The inputs, made once per size and cached.
if [[ ! -f $IMG/.done ]]; then
  log "making a $MIBS MiB guest disk (45 % incompressible, 20 % text, 35 % holes) and its inputs"
  make_guest_raw "$IMG/source.raw" "$MIBS"
  pigz -p 2 -c "$IMG/source.raw" > "$IMG/raw.gz"
  xz "-$XZP" -T1 -c "$IMG/source.raw" > "$IMG/single.raw.xz"
  xz "-$XZP" -T2 --block-size=32MiB -c "$IMG/source.raw" > "$IMG/multi.raw.xz"
  zstd -q -T2 -c "$IMG/source.raw" > "$IMG/raw.zst"
  qemu-img convert -q -f raw -O qcow2 "$IMG/source.raw" "$IMG/plain.qcow2"
  qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zlib "$IMG/source.raw" "$IMG/zlib.qcow2"
  qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zstd "$IMG/source.raw" "$IMG/zstd.qcow2"
  xz "-$XZP" -T2 --block-size=16MiB -c "$IMG/plain.qcow2" > "$IMG/plain.qcow2.xz"
  qemu-img convert -q -f raw -O vmdk -o subformat=monolithicSparse "$IMG/source.raw" "$IMG/disk.vmdk"
  blocks=$(xz --robot -l "$IMG/single.raw.xz" | awk '$1 == "totals" {print $3}')
  ((blocks == 1)) || { log "single.raw.xz has $blocks blocks"; exit 1; }
  blocks=$(xz --robot -l "$IMG/multi.raw.xz" | awk '$1 == "totals" {print $3}')
  ((blocks == (MIBS + 31) / 32)) || { log "multi.raw.xz has $blocks blocks"; exit 1; }
  # the reference: qemu-img's own conversion of every container equals source.raw
  for f in plain.qcow2 zlib.qcow2 zstd.qcow2 disk.vmdk; do
    qemu-img convert -q -O raw "$IMG/$f" "$IMG/ref.raw"
    cmp "$IMG/source.raw" "$IMG/ref.raw" || { log "qemu-img convert of $f differs from source.raw"; exit 1; }
  done
  rm -f "$IMG/ref.raw"
  touch "$IMG/.done"
fi

# The target: a fresh ext4 on a loop device backed by a file on the disk.
T=$(mktemp -d "$DIR/run.XXXXXX")
FS=$T/fs
cleanup() {
  mountpoint -q "$FS" && umount "$FS"
  rm -rf "$T"
}
trap cleanup EXIT
truncate -s $((MIBS + 256))M "$T/fs.ext4"
mkfs.ext4 -q -F -m 0 -E lazy_itable_init=0,lazy_journal_init=0 "$T/fs.ext4"
mkdir -p "$FS"
mount -o loop "$T/fs.ext4" "$FS"

# run_one INPUT MEMORY: one import in a fresh cgroup; sets R_S (wall seconds), R_RSS (KiB),
# R_PEAK (bytes), R_FAIL, R_OOM, R_OK (1 when exit 0, not killed, no OOM kill, output == source).
run_one() {
  local input=$1 mem=$2 rc=0
  rm -f "$FS/disk.img"
  sync
  python3 "$CGROUP_RUN" --memory "$mem" --report "$T/cg.json" -- \
    /usr/bin/time -f '%e %M' -o "$T/time" \
    "$CDI" --url "$IMG/$input" --dest "$FS/disk.img" --progress none -v > /dev/null 2> "$T/err" || rc=$?
  R_PEAK=$(jq -r .peak "$T/cg.json") R_FAIL=$(jq -r .failcnt "$T/cg.json") R_OOM=$(jq -r .oom_kills "$T/cg.json")
  read -r R_S R_RSS < <(grep -E '^[0-9.]+ [0-9]+$' "$T/time" | tail -n 1 || echo "- 0")
  R_MEMLINE=$(grep -o 'memory: .*' "$T/err" | head -n 1 || true)
  R_OK=0
  if ((rc == 0)) && [[ $(jq -r .signal "$T/cg.json") == null && $R_OOM == 0 ]]; then
    if cmp -s "$IMG/source.raw" "$FS/disk.img"; then
      R_OK=1
    else
      log "$input in $mem: OUTPUT DIFFERS from source.raw"
    fi
  else
    log "$input in $mem: exit $rc, report $(cat "$T/cg.json")"
    tail -n 3 "$T/err" >&2
  fi
}

# measure INPUT MEMORY: run_one $RUNS times; median time, largest RSS / usage / failcnt / OOMs.
measure() {
  local i times=() rss=0 peak=0 fail=0 oom=0 ok=1
  for ((i = 0; i < RUNS; i++)); do
    run_one "$1" "$2"
    ((R_OK)) || ok=0
    times+=("$R_S")
    ((R_RSS > rss)) && rss=$R_RSS
    ((R_PEAK > peak)) && peak=$R_PEAK
    ((R_FAIL > fail)) && fail=$R_FAIL
    ((R_OOM > oom)) && oom=$R_OOM
  done
  M_S=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
  M_RSS=$rss M_PEAK=$peak M_FAIL=$fail M_OOM=$oom M_OK=$ok M_MEMLINE=$R_MEMLINE
}

mib() { printf '%.1f' "$(echo "scale=2; $1 / 1048576" | bc)"; }
ratio() { [[ $1 == - || $2 == - ]] && { echo -; return; }; printf '%.2f' "$(echo "scale=4; $1 / $2" | bc)"; }

SCENARIOS=(
  "raw|source.raw"
  "raw.gz|raw.gz"
  "raw.xz, single block|single.raw.xz"
  "raw.xz, multi-block (32 MiB blocks)|multi.raw.xz"
  "raw.zst|raw.zst"
  "qcow2|plain.qcow2"
  "qcow2, zlib clusters|zlib.qcow2"
  "qcow2, zstd clusters|zstd.qcow2"
  "qcow2.xz|plain.qcow2.xz"
  "vmdk (qemu-img)|disk.vmdk"
)

ROWS=()
PLANS=()
for s in "${SCENARIOS[@]}"; do
  name=${s%%|*} input=${s#*|}
  [[ -n $ONLY && $name != *"$ONLY"* ]] && continue
  log "$name: unconstrained"
  measure "$input" 64G
  u_s=$M_S u_rss=$M_RSS u_peak=$M_PEAK u_ok=$M_OK
  log "$name: in a $LIMIT memory cgroup"
  measure "$input" "$LIMIT"
  c_s=$M_S c_rss=$M_RSS c_peak=$M_PEAK c_fail=$M_FAIL c_oom=$M_OOM c_ok=$M_OK
  r=$(ratio "$c_s" "$u_s")
  goal_t=no goal_m=no
  [[ $r != - ]] && (($(echo "$r <= 1.3" | bc))) && goal_t=yes
  ((c_rss * 1024 <= LIMIT_BYTES)) && goal_m=yes
  status=ok
  ((u_ok && c_ok)) || status="**FAILED**"
  ((c_oom > 0)) && status="**OOM-killed**"
  ROWS+=("$(printf '| %s | %d MiB | %s s | %s MiB | %s MiB | %s s | %s MiB | %s MiB | %s | **%s** (%s) | %s | %s |' \
    "$name" $(($(stat -c %s "$IMG/$input") >> 20)) "$u_s" "$(mib $((u_rss * 1024)))" "$(mib "$u_peak")" \
    "$c_s" "$(mib $((c_rss * 1024)))" "$(mib "$c_peak")" "$c_fail / $c_oom" "$r" "$goal_t" "$goal_m" "$status")")
  PLANS+=("- $name: ${M_MEMLINE:-(no memory line)}")
  log "$name: unconstrained ${u_s} s, in $LIMIT ${c_s} s (ratio $r), peak RSS $(mib $((c_rss * 1024))) MiB, cgroup max $(mib "$c_peak") MiB, failcnt/oom $c_fail/$c_oom, $status"
done

echo "$MIBS MiB guest disk (45 % incompressible, 20 % text, 35 % holes), output on a loop-mounted ext4;" \
  "$(nproc) CPUs; xz preset -$XZP; $RUNS run(s) per cell; load before: $LOAD_BEFORE"
echo
echo "| input | input size | unconstrained: wall | peak RSS | cgroup max usage | in 64 MiB: wall | peak RSS | cgroup max usage | failcnt / OOM kills | ratio (goal ≤ 1.3) | RSS ≤ 64 MiB | byte-exact, not killed |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Budget lines (\`-v\`) of the runs in 64 MiB:"
printf '%s\n' "${PLANS[@]}"
echo
echo "load after: $(uptime)"
