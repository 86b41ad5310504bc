#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/clone_interop.sh: host-assisted clone between our pod programs and CDI's own (v1.57, built
# from its vendored sources: ../shared/reference/cdi-peer.md) — our cdi-cloner -> CDI's
# cdi-uploadserver and CDI's cdi-cloner -> our cdi-uploadserver — for blockdevice-clone (a loop
# device) and filesystem-clone (a directory holding a sparse disk.img), each into a file target
# (/data/disk.img) and a block target (a loop device 16 MiB larger than the source, prefilled with
# random bytes), set up as CDI's controller sets up the two pods (bench/clone_lib.sh). A case
# PASSes when both sides exit 0, both termination messages say "Clone Complete" and the target
# holds the source byte for byte (a block target: its first <source size> bytes). Then, per pair,
# a wrong client-certificate CN and a stream cut halfway (tests/support/tcp_relay.py --cut-after): PASS
# when the clone fails visibly (cloner exit != 0, no "Clone Complete", no complete target). Prints
# PASS/FAIL per case and exits 1 if any failed.
#   Environment: CLONE_PAIRS (default "ours:cdi cdi:ours"; SOURCE:TARGET, e.g. "cdi:cdi" to check
#   the harness against CDI alone, "ours:ours"), CLONE_INTEROP_MIB (default 256: the source disk,
#   a cloud-like image: random + text, the rest holes), BENCH_DIR (default bench/.work-clone-interop),
#   CDI_IMPORT_BIN (our links, default build/cmd/cdi-import), CDI_PEER_DIR (default /work/cdi-peer).
#   CLONE_KEEP=1 keeps each run's logs, termination messages and targets in $BENCH_DIR/runs.
#   Needs root. Without CDI's binaries it prints why and exits 0 (nothing to compare against). Not
#   run by CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
source "$ROOT/bench/clone_lib.sh"
MIBS=${CLONE_INTEROP_MIB:-256}
WORK=$(realpath -m "${BENCH_DIR:-$ROOT/bench/.work-clone-interop}")
OURS_BIN=$(realpath -m "${CDI_IMPORT_BIN:-$ROOT/build/cmd/cdi-import}")
PEER_DIR=$(realpath -m "${CDI_PEER_DIR:-/work/cdi-peer}")
PAIRS=${CLONE_PAIRS:-ours:cdi cdi:ours}
((EUID == 0)) || { echo "clone_interop: needs root (loop devices, mount and network namespaces)" >&2; exit 1; }
if ! peer_available; then
  echo "clone_interop: SKIP: CDI's cdi-cloner/cdi-uploadserver/cloner_startup.sh not found in $PEER_DIR" \
       "(set CDI_PEER_DIR; build them with ../shared/test-infra/cdi-peer-build.sh)" >&2
  exit 0
fi
for pair in $PAIRS; do
  if [[ $pair == ours:* ]] && ! ours_cloner_available; then
    echo "clone_interop: our cdi-cloner not found in $OURS_BIN (or $(ours_startup) missing): build first" >&2
    exit 1
  fi
  if [[ $pair == *:ours ]] && ! ours_server_available; then
    echo "clone_interop: our cdi-uploadserver not found in $OURS_BIN: build first" >&2
    exit 1
  fi
done
clone_enter_netns "$@"

clone_setup "$MIBS" random

name() { [[ $1 == cdi ]] && echo "CDI" || echo "our"; }
fails=0 results=()
for pair in $PAIRS; do
  si=${pair%%:*} ti=${pair#*:}
  for kind in block fs; do
    for target in file block; do
      ct=$([[ $kind == block ]] && echo blockdevice-clone || echo filesystem-clone)
      label="$(name "$si") cdi-cloner -> $(name "$ti") cdi-uploadserver, $ct, $([[ $kind == block ]] && echo "loop device" || echo "dir/disk.img") -> $([[ $target == block ]] && echo "block target" || echo "file target")"
      [[ $target == block ]] && fresh_block_target
      run=$WORK/runs/$si-$ti-$kind-$target
      why=
      one_clone "$si" "$ti" "$kind" "$target" "$run" || true
      [[ $C_CL_RC == 0 ]] || why+="cloner exit $C_CL_RC; "
      [[ $C_SRV_RC == 0 ]] || why+="server exit $C_SRV_RC; "
      [[ $C_CL_TERM == *"Clone Complete"* ]] || why+="cloner termination message '${C_CL_TERM}'; "
      [[ $C_SRV_TERM == *"Clone Complete"* ]] || why+="server termination message '${C_SRV_TERM}'; "
      target_matches "$target" "$run" || why+="target differs from the source; "
      extra=" (wire $((${C_WIRE:-0} >> 10)) KiB"
      [[ $target == file && -f $run/data/disk.img ]] && extra+=", disk.img $(( $(stat -c %b "$run/data/disk.img") * 512 >> 20)) MiB allocated"
      extra+=")"
      if [[ -z $why ]]; then
        results+=("PASS  $label$extra")
      else
        fails=$((fails + 1))
        results+=("FAIL  $label: ${why%; }$extra")
        { echo "--- cloner log"; tail -n 8 "$run/cloner.log"; echo "--- server log"; tail -n 8 "$run/server.log"; } >&2 || true
      fi
      echo "${results[-1]}"
    done
  done
done
# Refusals and failures across the pair (blockdevice-clone into a file target): a client
# certificate with the wrong CN, and the stream cut after 8 MiB by the relay. PASS when the cloner
# exits non-zero, neither side says "Clone Complete" and no disk.img equal to the source is left.
for pair in $PAIRS; do
  si=${pair%%:*} ti=${pair#*:}
  for fault in wrong-cn cut; do
    label="$(name "$si") cdi-cloner -> $(name "$ti") cdi-uploadserver, blockdevice-clone -> file target, $([[ $fault == cut ]] && echo "stream cut after 8 MiB" || echo "wrong client CN")"
    run=$WORK/runs/$si-$ti-$fault
    why=
    if [[ $fault == cut ]]; then one_clone "$si" "$ti" block file "$run" client $((8 << 20)) || true
    else one_clone "$si" "$ti" block file "$run" wrong || true; fi
    [[ $C_CL_RC != 0 ]] || why+="cloner exit 0; "
    if [[ $fault == cut ]]; then
      ((${C_WIRE:-0} >= 8 << 20)) || why+="the cloner failed before the cut (${C_WIRE:-0} bytes sent); "
    else
      ((${C_WIRE:-0} > 0)) || why+="the cloner never connected; "
    fi
    [[ $C_CL_TERM != *"Clone Complete"* ]] || why+="cloner says '$C_CL_TERM'; "
    [[ $C_SRV_TERM != *"Clone Complete"* ]] || why+="server says '$C_SRV_TERM'; "
    ! target_matches file "$run" || why+="a complete disk.img is there; "
    left=$(find "$run/data" -mindepth 1 -maxdepth 1 -printf '%f ' 2> /dev/null)
    extra=" (cloner exit $C_CL_RC, server $([[ $C_SRV_RC == 143 || $C_SRV_RC == 1 ]] && echo "still waiting, stopped" || echo "exit $C_SRV_RC"), /data: ${left:-empty})"
    if [[ -z $why ]]; then results+=("PASS  $label$extra"); else
      fails=$((fails + 1)); results+=("FAIL  $label: ${why%; }$extra"); fi
    echo "${results[-1]}"
  done
done

echo
echo "clone_interop: $((${#results[@]} - fails)) passed, $fails failed (source: $MIBS MiB, $(($(stat -c %b "$SRC_IMG") * 512 >> 20)) MiB data)"
((fails == 0))
