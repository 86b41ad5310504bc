#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/podns.sh [OPTIONS] -- COMMAND...: runs COMMAND as a pod's container would see its volumes,
# without touching the host: in a private mount namespace, chrooted into an overlay of / (upper on
# a tmpfs) with /proc, /sys, /tmp and /work bound through, /dev an overlay of the real /dev, and
# CDI's fixed paths bound to per-run files and directories:
#   --data DIR        DIR on /data                     (filesystem target: /data/disk.img)
#   --block DEV       the block device DEV on /dev/cdi-block-volume (block source or target)
#   --source DIR      DIR read-only on /var/run/cdi/clone/source (the cloner's filesystem source)
#   --term FILE       FILE (created empty) on /dev/termination-log
#   --bin NAME=PATH   PATH as /usr/bin/NAME (a symlink; cloner_startup.sh runs /usr/bin/cdi-cloner)
# The network namespace is the caller's (bench/clone.sh runs everything in a private one).
# PODNS_TMPDIR: where the (empty, left behind) mount point of the tmpfs goes (default /tmp).
# Used by bench/clone.sh and bench/clone_interop.sh; needs root. Not run by CI.
set -euo pipefail
data='' block='' source='' term='' bins=()
while (($#)); do
  case $1 in
    --data) data=$2; shift 2 ;;
    --block) block=$2; shift 2 ;;
    --source) source=$2; shift 2 ;;
    --term) term=$2; shift 2 ;;
    --bin) bins+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "podns: unknown option $1" >&2; exit 2 ;;
  esac
done
(($#)) || { echo "usage: podns.sh [--data DIR] [--block DEV] [--source DIR] [--term FILE] [--bin NAME=PATH] -- CMD..." >&2; exit 2; }
[[ -z $term ]] || : > "$term"

if [[ ${PODNS_INNER:-} != 1 ]]; then
  export PODNS_INNER=1
  args=()
  [[ -z $data ]] || args+=(--data "$data")
  [[ -z $block ]] || args+=(--block "$block")
  [[ -z $source ]] || args+=(--source "$source")
  [[ -z $term ]] || args+=(--term "$term")
  for b in "${bins[@]}"; do args+=(--bin "$b"); done
  exec unshare -m --propagation private -- "$0" "${args[@]}" -- "$@"
fi

# inside the private mount namespace
T=$(mktemp -d "${PODNS_TMPDIR:-/tmp}/podns.XXXXXX")   # an empty directory left behind: callers point
                                                     # PODNS_TMPDIR at their own work directory
mount -t tmpfs -o mode=755 podns "$T"
mkdir "$T"/{u,w,du,dw,root}
mount -t overlay podns-root -o "lowerdir=/,upperdir=$T/u,workdir=$T/w" "$T/root"
R=$T/root
for m in /proc /sys /tmp /work; do mount --rbind "$m" "$R$m"; done
mount -t overlay podns-dev -o "lowerdir=/dev,upperdir=$T/du,workdir=$T/dw" "$R/dev"
for m in /dev/pts /dev/shm; do [[ -d $m ]] && mount --rbind "$m" "$R$m"; done
if [[ -n $data ]]; then mkdir -p "$R/data"; mount --bind "$data" "$R/data"; fi
if [[ -n $block ]]; then : > "$R/dev/cdi-block-volume"; mount --bind "$block" "$R/dev/cdi-block-volume"; fi
if [[ -n $source ]]; then
  mkdir -p "$R/run/cdi/clone/source"
  mount --bind "$source" "$R/run/cdi/clone/source"
  mount -o remount,bind,ro "$R/run/cdi/clone/source"
fi
if [[ -n $term ]]; then : > "$R/dev/termination-log"; mount --bind "$term" "$R/dev/termination-log"; fi
for b in "${bins[@]}"; do ln -sf "${b#*=}" "$R/usr/bin/${b%%=*}"; done
unset PODNS_INNER
exec chroot "$R" /bin/sh -c 'cd / && exec "$@"' sh "$@"
