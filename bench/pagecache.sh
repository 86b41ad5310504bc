#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Page cache of file targets: direct I/O against buffered writes with sync_file_range windows
# and POSIX_FADV_DONTNEED (what lib/sink does), and against the sinks before the drop. Every run
# writes BENCH_SIZE_MIB (default 2048) MiB of incompressible data to a file on BENCH_DIR's
# filesystem (ext4 here), caches dropped first, once unconstrained and once inside a memory
# cgroup of BENCH_LIMIT_MIB (default 64), the cgroup made by this script (v1: memory.limit_in_bytes,
# memory.max_usage_in_bytes, memory.failcnt, oom_control; v2: memory.max, memory.peak,
# memory.events). Reports wall time and the cgroup's peak usage (page cache included).
#   sudo bench/pagecache.sh            # the driver runs (bench/pagecache_write.cpp)
#   BENCH_IMPORT=1 sudo bench/pagecache.sh   # also cdi-import of a raw and a raw.zst (and
#                                      # CDI_IMPORT_OLD=path/to/an/older/cdi-import for comparison)
# Needs root (cgroups, drop_caches), zstd, openssl. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$PWD
SIZE_MIB=${BENCH_SIZE_MIB:-2048}
LIMIT_MIB=${BENCH_LIMIT_MIB:-64}
REPS=${BENCH_REPS:-2}
WORK=${BENCH_DIR:-$ROOT_DIR/bench/.work}/pagecache
DRIVER=${PAGECACHE_WRITE:-$ROOT_DIR/build/bench/pagecache_write}
CDI=${CDI_IMPORT:-$ROOT_DIR/build/cmd/cdi-import/cdi-import}
[[ $(id -u) == 0 ]] || { echo "needs root (cgroups, drop_caches)" >&2; exit 1; }
[[ -x $DRIVER ]] || { echo "build first: $DRIVER missing" >&2; exit 1; }
mkdir -p "$WORK"
MIB=$((1024 * 1024))

# ---- cgroups ------------------------------------------------------------------------------------
if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
  CG_V=2
  CG_PARENT=/sys/fs/cgroup$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
  # The limit goes on a leaf; the memory controller must be enabled for the parent's children.
  grep -qw memory "$CG_PARENT/cgroup.subtree_control" 2>/dev/null || echo +memory > "$CG_PARENT/cgroup.subtree_control"
else
  CG_V=1
  CG_PARENT=/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
fi
CG=
cleanup() { [[ -n $CG && -d $CG ]] && rmdir "$CG" 2>/dev/null; rm -f "$WORK"/out.* "$WORK/time" "$WORK/err"; }
trap cleanup EXIT

# in_cgroup LIMIT_MIB|none CMD...: runs CMD in a fresh memory cgroup; sets WALL, CPU (user+sys
# seconds), PEAK_MIB, FAILS, OOM.
in_cgroup() {
  local limit=$1; shift
  CG=$CG_PARENT/cdi-pagecache.$$
  mkdir "$CG"
  if [[ $limit != none ]]; then
    if [[ $CG_V == 1 ]]; then echo $((limit * MIB)) > "$CG/memory.limit_in_bytes"; else echo $((limit * MIB)) > "$CG/memory.max"; fi
  fi
  local procs=$CG/tasks t0 t1 rc=0
  [[ $CG_V == 2 ]] && procs=$CG/cgroup.procs
  t0=$(date +%s.%N)
  sh -c 'echo $$ > "$1"; shift; exec "$@"' sh "$procs" /usr/bin/time -f '%U %S' -o "$WORK/time" "$@" 2> "$WORK/err" || rc=$?
  t1=$(date +%s.%N)
  WALL=$(bc -l <<< "$t1 - $t0")
  CPU=$(awk '{print $1 + $2}' "$WORK/time")
  if [[ $CG_V == 1 ]]; then
    PEAK_MIB=$(( $(cat "$CG/memory.max_usage_in_bytes") / MIB ))
    FAILS=$(cat "$CG/memory.failcnt")
    OOM=$(awk '$1 == "oom_kill" {print $2}' "$CG/memory.oom_control")
  else
    PEAK_MIB=$(( $(cat "$CG/memory.peak") / MIB ))
    FAILS=$(awk '$1 == "max" {print $2}' "$CG/memory.events")
    OOM=$(awk '$1 == "oom_kill" {print $2}' "$CG/memory.events")
  fi
  rmdir "$CG"; CG=
  [[ $rc == 0 ]] || { cat "$WORK/err" >&2; echo "failed (exit $rc, oom_kill ${OOM:-?}): $*" >&2; return 1; }
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# bench_row LABEL CMD...: REPS runs unconstrained and REPS in the cgroup, interleaved; the median
# (of 2: the mean) of each; prints a table row.
bench_row() {
  local label=$1; shift
  local -a free_t=() lim_t=() free_p=() lim_p=() lim_f=() lim_o=() free_c=() lim_c=()
  for ((i = 0; i < REPS; i++)); do
    rm -f "$WORK"/out.*; drop_caches
    in_cgroup none "$@"; free_t+=("$WALL"); free_p+=("$PEAK_MIB"); free_c+=("$CPU")
    rm -f "$WORK"/out.*; drop_caches
    in_cgroup "$LIMIT_MIB" "$@"; lim_t+=("$WALL"); lim_p+=("$PEAK_MIB"); lim_f+=("$FAILS"); lim_o+=("${OOM:-0}"); lim_c+=("$CPU")
  done
  local ft lt fc lc
  ft=$(median "${free_t[@]}"); lt=$(median "${lim_t[@]}"); fc=$(median "${free_c[@]}"); lc=$(median "${lim_c[@]}")
  printf '| %s | %.2f s | %.2f s | %s MiB | %.2f s | %.2f s | %s MiB | %s | %s | %.2f |\n' "$label" "$ft" "$fc" \
    "$(IFS=/; echo "${free_p[*]}")" "$lt" "$lc" "$(IFS=/; echo "${lim_p[*]}")" "$(IFS=/; echo "${lim_f[*]}")" \
    "$(IFS=/; echo "${lim_o[*]}")" "$(bc -l <<< "$lt / $ft")"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
HEADER="| wall, no limit | CPU | peak usage, no limit | wall, ${LIMIT_MIB} MiB cgroup | CPU | peak usage, ${LIMIT_MIB} MiB | failcnt | oom kills | limited / free |
|---|---|---|---|---|---|---|---|---|---|"

echo "$SIZE_MIB MiB to $(df --output=fstype "$WORK" | tail -1) at $WORK, cgroup v$CG_V, limit $LIMIT_MIB MiB, $REPS runs each (wall and CPU = user+sys: median; peak usage per run)"
echo
echo "| writer $HEADER"
OUT=$WORK/out.raw
bench_row "buffered, one fsync at the end" "$DRIVER" buffered "$OUT" "$SIZE_MIB"
bench_row "sync_file_range 64 MiB windows, no drop (sinks before)" "$DRIVER" syncrange "$OUT" "$SIZE_MIB" 64
for w in ${BENCH_WINDOWS:-64 16 8}; do
  bench_row "FileSink: sync_file_range + DONTNEED, $w MiB windows" "$DRIVER" sink "$OUT" "$SIZE_MIB" "$w"
done
for b in ${BENCH_DIRECT_BUFFERS:-4 16}; do
  bench_row "O_DIRECT, $b MiB bounce buffer" "$DRIVER" direct "$OUT" "$SIZE_MIB" "$b"
done

if [[ ${BENCH_IMPORT:-0} == 1 ]]; then
  [[ -x $CDI ]] || { echo "build first: $CDI missing" >&2; exit 1; }
  SRC=$WORK/source.$SIZE_MIB.raw
  if [[ ! -f $SRC ]]; then   # incompressible, dense: every byte is written, every byte read
    head -c $((SIZE_MIB * MIB)) /dev/zero | openssl enc -aes-128-ctr -nosalt -pass pass:pagecache -pbkdf2 2>/dev/null > "$SRC.tmp"
    mv "$SRC.tmp" "$SRC"
  fi
  [[ -f $SRC.zst ]] || zstd -q -1 -T2 -c "$SRC" > "$SRC.zst"
  echo
  echo "cdi-import --url SOURCE --dest $WORK/out.img (source and target on the same ext4):"
  echo
  echo "| import $HEADER"
  # The CLI takes no window size (a memory-budget planner picks it): the driver's copy mode is
  # cdi-import's raw path (open_file_source -> FileSink) with the window and drop step chosen.
  for wd in ${BENCH_COPY:-64:32 16:8 8:8}; do
    bench_row "copy raw via open_file_source + FileSink, window ${wd%%:*} MiB, source drop step ${wd##*:} MiB" \
      "$DRIVER" copy "$WORK/out.img" "$SRC" "${wd%%:*}" "${wd##*:}"
  done
  for bin in ${CDI_IMPORT_OLD:+"$CDI_IMPORT_OLD"} "$CDI"; do
    tag=$([[ $bin == "$CDI" ]] && echo "this build" || echo "$CDI_IMPORT_OLD")
    for src in "$SRC" "$SRC.zst"; do
      bench_row "$(basename "$src") ($tag)" "$bin" --url "$src" --dest "$WORK/out.img" --progress none
    done
  done
  cmp -s "$SRC" "$WORK/out.img" || { echo "output differs from the source" >&2; exit 1; }
fi
