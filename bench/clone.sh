#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/clone.sh: a host-assisted clone of a 2 GiB mostly-sparse disk (shaped like a cloud image:
# ~310 MiB of random and text data, the rest holes), cloner pod -> upload-server pod on 127.0.0.1,
# ours (cdi-cloner -> cdi-uploadserver) against CDI's own pair (v1.57 built from its vendored
# sources, see ../shared/reference/cdi-peer.md) in the same run, on the same input, set up the
# same way (bench/podns.sh: CDI's fixed paths bound per run; CDI's env; one private network
# namespace; tests/support/tcp_relay.py counting the TLS bytes between the two). Cases:
#   blockdevice-clone, loop device -> loop device (/dev/cdi-block-volume on both sides)
#   blockdevice-clone, loop device -> file target (/data/disk.img)
#   filesystem-clone,  directory with a sparse disk.img -> file target
#   filesystem-clone,  directory with a sparse disk.img -> loop device
# Per case: wall time (cloner start -> server exited, target synced), bytes on the wire
# (client -> server, TLS included), CPU (user + sys) and peak RSS of each side (/usr/bin/time
# around each pod's entry point: cloner_startup.sh and everything it runs, e.g. tar; the upload
# server), the target's allocated size (disk.img, or a block target's fresh sparse backing file —
# BLKZEROOUT on a loop device allocates it too, so there it shows little), and a byte-exact check of the target
# against the source (a run whose target differs is reported as WRONG). Page cache dropped before
# each run. Prints a markdown table and the ratios ours / CDI (below 1.0: ours is smaller/faster).
#   Environment: BENCH_SIZE_MIB (default 2048), BENCH_RUNS (default 3; median of interleaved runs,
#   RSS the largest), BENCH_DIR (default bench/.work-clone-pods), CDI_IMPORT_BIN (directory of our
#   links, default build/cmd/cdi-import), CDI_PEER_DIR (CDI's binaries, default /work/cdi-peer:
#   without it only our side is measured, with a message), BENCH_CASES (subset, e.g.
#   "block-block fs-file"), CLONE_KEEP=1 (keep each run's logs and targets in $BENCH_DIR/runs). Needs root (loop devices, namespaces). Not run by CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
source "$ROOT/bench/clone_lib.sh"
MIBS=${BENCH_SIZE_MIB:-2048}
RUNS=${BENCH_RUNS:-3}
WORK=$(realpath -m "${BENCH_DIR:-$ROOT/bench/.work-clone-pods}")
OURS_BIN=$(realpath -m "${CDI_IMPORT_BIN:-$ROOT/build/cmd/cdi-import}")
PEER_DIR=$(realpath -m "${CDI_PEER_DIR:-/work/cdi-peer}")
CASES=${BENCH_CASES:-block-block block-file fs-file fs-block}
((EUID == 0)) || { echo "bench: clone.sh needs root (loop devices, mount and network namespaces)" >&2; exit 1; }
for tool in openssl losetup blockdev unshare chroot ip bc /usr/bin/time /usr/bin/python3 tar; do
  command -v "$tool" > /dev/null || { echo "bench: $tool missing" >&2; exit 1; }
done
clone_enter_netns "$@"

IMPLS=()
if ours_available; then IMPLS+=(ours); else
  echo "bench: our cdi-cloner/cdi-uploadserver not found in $OURS_BIN (or scripts/cloner_startup.sh missing): build first; measuring CDI's side only" >&2
fi
if peer_available; then IMPLS+=(cdi); else
  echo "bench: CDI's binaries not found in $PEER_DIR (set CDI_PEER_DIR; build them with ../shared/test-infra/cdi-peer-build.sh): skipping the CDI side, no ratios" >&2
fi
((${#IMPLS[@]})) || { echo "bench: nothing to measure" >&2; exit 1; }

clone_setup "$MIBS" sparse

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2> /dev/null || true; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -n 1; }

declare -A R   # R[case,impl,metric]
run_case() {   # run_case CASE IMPL RUN_INDEX
  local case=$1 impl=$2 i=$3 kind=${1%-*} target=${1#*-} run=$WORK/runs/$1-$2
  [[ $target == block ]] && fresh_block_target
  drop_caches
  one_clone "$impl" "$impl" "$kind" "$target" "$run" || true
  local ok=1 alloc=-
  if [[ $C_CL_RC != 0 || $C_SRV_RC != 0 ]] || ! target_matches "$target" "$run"; then
    ok=0
    clog "  $case $impl: FAILED or WRONG (cloner rc $C_CL_RC, server rc $C_SRV_RC); logs:"
    tail -n 5 "$run/cloner.log" "$run/server.log" >&2 || true
  fi
  if [[ $target == file ]]; then
    [[ -f $run/data/disk.img ]] && alloc=$(( $(stat -c %b "$run/data/disk.img") * 512 ))
  else
    alloc=$(( $(stat -c %b "$TGT_FILE") * 512 ))   # the loop device's (sparse, fresh) backing file
  fi
  local su ss sm cu cs cm
  read -r _ su ss sm <<< "$C_SRV_TIME"
  read -r _ cu cs cm <<< "$C_CL_TIME"
  local k="$case,$impl"
  R[$k,wall]+="$C_WALL " R[$k,wire]+="${C_WIRE:-0} " R[$k,ccpu]+="$(sum "$cu" "$cs") "
  R[$k,scpu]+="$(sum "$su" "$ss") " R[$k,crss]+="$cm " R[$k,srss]+="$sm " R[$k,alloc]=$alloc
  ((ok)) || R[$k,wrong]=1
  clog "  $(printf '%-12s %-4s run %d: %6.2f s, wire %5d MiB, cloner %5.2f s CPU %4d MiB, server %5.2f s CPU %4d MiB%s' \
    "$case" "$impl" "$i" "$C_WALL" $((${C_WIRE:-0} >> 20)) "$(sum "$cu" "$cs")" $((cm >> 10)) \
    "$(sum "$su" "$ss")" $((sm >> 10)) "$( ((ok)) && echo "" || echo "  WRONG")")"
}

start=$SECONDS
clog "source: $SRC_SIZE bytes, $(($(stat -c %b "$SRC_IMG") * 512 >> 20)) MiB allocated; implementations: ${IMPLS[*]}; $RUNS run(s) each"
for case in $CASES; do
  for ((i = 1; i <= RUNS; i++)); do
    for impl in "${IMPLS[@]}"; do run_case "$case" "$impl" "$i"; done
  done
done

label() {
  case $1 in
    block-block) echo 'blockdevice-clone, block → block' ;;
    block-file) echo 'blockdevice-clone, block → file' ;;
    fs-file) echo 'filesystem-clone, dir → file' ;;
    fs-block) echo 'filesystem-clone, dir → block' ;;
  esac
}
val() {   # val CASE IMPL METRIC -> median (wall, wire, cpu) or max (rss)
  local -a v
  read -r -a v <<< "${R[$1,$2,$3]}"
  case $3 in crss | srss) maxof "${v[@]}" ;; *) median "${v[@]}" ;; esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

echo
echo "Host-assisted clone, $MIBS MiB disk ($(($(stat -c %b "$SRC_IMG") * 512 >> 20)) MiB data, the rest holes), cloner → upload server over" \
     "mutual TLS on 127.0.0.1, median of $RUNS run(s), page cache dropped before each; $(date -u +%Y-%m-%d);" \
     "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| case | side | wall | on the wire | cloner CPU | cloner peak RSS | server CPU | server peak RSS | target allocated | byte-exact |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for case in $CASES; do
  for impl in "${IMPLS[@]}"; do
    k="$case,$impl"
    name=$([[ $impl == ours ]] && echo "ours" || echo "CDI v1.57")
    alloc=${R[$k,alloc]}
    [[ $alloc != - ]] && alloc="$(mib "$alloc") MiB"
    printf '| %s | %s | %.2f s | %s MiB | %.2f s | %d MiB | %.2f s | %d MiB | %s | %s |\n' "$(label "$case")" "$name" \
      "$(val "$case" "$impl" wall)" "$(mib "$(val "$case" "$impl" wire)")" "$(val "$case" "$impl" ccpu)" \
      $(($(val "$case" "$impl" crss) >> 10)) "$(val "$case" "$impl" scpu)" $(($(val "$case" "$impl" srss) >> 10)) \
      "$alloc" "$([[ -n ${R[$k,wrong]:-} ]] && echo "**NO**" || echo yes)"
  done
done
if [[ " ${IMPLS[*]} " == *" ours "* && " ${IMPLS[*]} " == *" cdi "* ]]; then
  echo
  echo "Ratios ours / CDI (below 1.0: ours is faster or smaller):"
  echo
  echo "| case | wall | on the wire | cloner CPU | cloner peak RSS | server CPU | server peak RSS |"
  echo "|---|---|---|---|---|---|---|"
  for case in $CASES; do
    row="| $(label "$case") |"
    for m in wall wire ccpu crss scpu srss; do
      row+=" **$(ratio "$(val "$case" ours $m)" "$(val "$case" cdi $m)")** |"
    done
    echo "$row"
  done
fi
clog "done in $((SECONDS - start)) s"
