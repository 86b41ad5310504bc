#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# SIGKILL during an import (OOM, eviction): nothing named survives next to a file target, the space
# comes back, the previous target is unchanged and the next import succeeds byte-exact. Targets are
# on a small dedicated ext4 on a loop device (so `df` sees only the import), and on a real
# filesystem without O_TMPFILE (fuse-overlayfs over that ext4) for the named-partial fallback.
# Needs root (loop devices, mounts, /dev/fuse), as CI has.
source "$(dirname "$0")/lib.sh"

# used DIR: bytes in use on DIR's filesystem.
used() { df --output=used -B1 "$1" | tail -n 1 | tr -d ' '; }

# has_tmpfile DIR: whether O_TMPFILE works in DIR.
has_tmpfile() {
  python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_TMPFILE | os.O_RDWR, 0o600))' "$1" 2>/dev/null
}

# feed_stalled FILE BYTES: a FIFO $W/_meta/feed that carries the first BYTES of FILE and then
# stays open without data: an import reading it stalls there, so it is certainly killed mid-way.
feed_stalled() {
  rm -f "$W/_meta/feed"
  mkfifo "$W/_meta/feed"
  ( head -c "$2" "$1"; exec sleep 600 ) > "$W/_meta/feed" &
  register_pid $!
}

# old_target DIR: puts the "previous import" into DIR/disk.img (2 MiB of random bytes, a copy kept
# in $W/_meta/old.img).
old_target() {
  head -c $((2 * MIB)) /dev/urandom > "$W/_meta/old.img"
  cp "$W/_meta/old.img" "$1/disk.img"
  sync
}

# listing_of DIR: `ls -A` of DIR on one line.
listing_of() { ls -A "$1" | tr '\n' ' ' | sed 's/ $//'; }

# kill_when_written DIR BYTES ALLOWED_ERE CMD...: runs CMD in the background (stdin from $KILL_STDIN,
# default /dev/null; with $KILL_READY set, that function returning 0 replaces the BYTES condition
# below); every 10 ms checks that
# each name in `ls -A DIR` matches ALLOWED_ERE (the whole name) and looks at the open files of its
# children (qemu-img); once DIR's filesystem holds BYTES more than at the start, SIGKILLs CMD alone
# and waits until CMD and every child it had are gone (a qemu-img child finishes its conversion
# into the file it holds, then exits). Sets QEMU_UNNAMED_FDS (most fds a child had open on an
# unnamed file in DIR), QEMU_DIRECT (1 when one of those was opened O_DIRECT), CHILDREN and
# CHILDREN_GONE_MS (how long the children outlived the kill).
# sample_children PID DIR: adds PID's children to $kids and updates QEMU_UNNAMED_FDS / QEMU_DIRECT
# from their open files (see kill_when_written).
sample_children() {
  local pid=$1 dir=$2 k fd f flags count
  for k in $(pgrep -P "$pid" || true); do
    [[ " $kids " == *" $k "* ]] || kids="$kids $k"
    count=0
    for fd in /proc/"$k"/fd/*; do
      f=$(readlink "$fd" 2>/dev/null) || continue
      # an O_TMPFILE inode reads as "DIR/#INODE (deleted)"
      if [[ $f =~ ^"$dir"/\#[0-9]+\ \(deleted\)$ ]]; then
        count=$((count + 1))
        flags=$(awk '/^flags:/ {print $2}' /proc/"$k"/fdinfo/"${fd##*/}" 2>/dev/null || echo 0)
        (( (8#${flags:-0} & 8#40000) != 0 )) && QEMU_DIRECT=1   # O_DIRECT
      fi
    done
    ((count > QEMU_UNNAMED_FDS)) && QEMU_UNNAMED_FDS=$count
  done
  return 0
}

kill_when_written() {
  local dir=$1 bytes=$2 allowed=$3
  shift 3
  local base n k t0=$SECONDS
  kids=""
  QEMU_UNNAMED_FDS=0
  QEMU_DIRECT=0
  base=$(used "$dir")
  "$@" < "${KILL_STDIN:-/dev/null}" > "$W/_meta/out" 2> "$W/_meta/err" &
  local pid=$!
  register_pid "$pid"
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_output
      fail "the import ended before it could be killed"
    fi
    sample_children "$pid" "$dir"
    while read -r n; do
      [[ -z $n || $n =~ ^($allowed)$ ]] || fail "a name appeared in $dir during the import: $n"
    done < <(ls -A "$dir")
    if [[ -n ${KILL_READY:-} ]]; then
      "$KILL_READY" && break
    else
      (($(used "$dir") - base >= bytes)) && break
    fi
    ((SECONDS - t0 < 60)) || fail "$bytes bytes not written within 60 s"
    sleep 0.01
  done
  sample_children "$pid" "$dir"   # once more, as late as possible: the writer is at work now
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  echo "killed cdi-import (pid $pid) after $(($(used "$dir") - base)) bytes; children:${kids:- none}" >&2
  local killed_at=${EPOCHREALTIME/./}
  for k in $kids; do
    t0=$SECONDS
    while kill -0 "$k" 2>/dev/null; do
      ((SECONDS - t0 < 120)) || fail "child $k still running 120 s after the kill"
      sleep 0.01
    done
  done
  CHILDREN_GONE_MS=$(( (${EPOCHREALTIME/./} - killed_at) / 1000 ))
  CHILDREN=$kids
}

# after_kill DIR BASE_USED: only the previous target is in DIR, with its old bytes, and DIR's
# filesystem uses exactly what it used before the killed run.
after_kill() {
  local dir=$1 base=$2 now
  [[ $(listing_of "$dir") == "disk.img" ]] || fail "after the kill $dir holds: $(listing_of "$dir")"
  cmp "$W/_meta/old.img" "$dir/disk.img" || fail "the previous target changed"
  now=$(used "$dir")
  ((now == base)) || fail "space not returned after the kill: $now bytes used, $base before"
}

# --- O_TMPFILE targets (ext4): nothing named, ever -------------------------------------------

t_kill_raw_xz_copy_loop() {
  require_root
  local d=$W/dest/fs base
  ext4_mount "$d" 160
  has_tmpfile "$d" || fail "ext4 must support O_TMPFILE"
  old_target "$d"
  base=$(used "$d")
  feed_stalled "$IMG/raw.xz" $(($(stat -c %s "$IMG/raw.xz") / 2))
  KILL_STDIN=$W/_meta/feed kill_when_written "$d" $((2 * MIB)) 'disk\.img' "$CDI" --url - --dest "$d/disk.img"
  after_kill "$d" "$base"
  run_import --url "$IMG/raw.xz" --dest "$d/disk.img"
  assert_same_as_qemu "$IMG/source.raw" "$d/disk.img" raw
  [[ $(listing_of "$d") == "disk.img" ]] || fail "after the import: $(listing_of "$d")"
}

t_kill_qcow2_native_decoder() {
  require_root
  local d=$W/dest/fs base
  ext4_mount "$d" 160
  old_target "$d"
  base=$(used "$d")
  feed_stalled "$IMG/qcow2-zlib.qcow2" $(($(stat -c %s "$IMG/qcow2-zlib.qcow2") * 3 / 4))
  KILL_STDIN=$W/_meta/feed kill_when_written "$d" $((1 * MIB)) 'disk\.img' "$CDI" --url - --dest "$d/disk.img"
  after_kill "$d" "$base"
  run_import --url "$IMG/qcow2-zlib.qcow2" --dest "$d/disk.img"
  assert_same_as_qemu "$IMG/qcow2-zlib.qcow2" "$d/disk.img"
  [[ $(listing_of "$d") == "disk.img" ]] || fail "after the import: $(listing_of "$d")"
}

t_kill_vmdk_via_qemu_img() {
  # qemu-img writes the unnamed file through /proc/self/fd/N (O_DIRECT where the target has it)
  require_root
  local d=$W/dest/fs base vmdk=$W/_meta/big.vmdk
  ext4_mount "$d" 400
  # 256 MiB of compressible, non-zero text in a streamOptimized vmdk: slow enough to be killed.
  ( set +o pipefail; yes "a line of a vmdk that takes a while to convert" | head -c $((256 * MIB)) ) > "$W/_meta/big.raw"
  qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$W/_meta/big.raw" "$vmdk"
  rm -f "$W/_meta/big.raw"
  old_target "$d"
  base=$(used "$d")
  kill_when_written "$d" $((8 * MIB)) 'disk\.img' "$CDI" --url "$vmdk" --dest "$d/disk.img"
  ((QEMU_UNNAMED_FDS >= 2)) || fail "qemu-img had $QEMU_UNNAMED_FDS fds on an unnamed file (inherited + its own expected)"
  ((QEMU_DIRECT == 1)) || fail "qemu-img did not open the unnamed target with O_DIRECT (-t none)"
  [[ -n $CHILDREN ]] || fail "no qemu-img child seen"
  # PR_SET_PDEATHSIG: qemu-img dies with cdi-import instead of finishing a conversion nobody uses
  ((CHILDREN_GONE_MS < 2000)) || fail "qemu-img outlived the killed cdi-import by $CHILDREN_GONE_MS ms"
  after_kill "$d" "$base"
  run_import --url "$vmdk" --dest "$d/disk.img"
  assert_same_as_qemu "$vmdk" "$d/disk.img" vmdk
  [[ $(listing_of "$d") == "disk.img" ]] || fail "after the import: $(listing_of "$d")"
}

t_kill_archive_import() {
  # An extraction cannot be unnamed: a killed archive import leaves its staging directory, which
  # the next import removes (and only it) before it starts.
  require_root
  local d=$W/dest/fs base stage
  ext4_mount "$d" 160
  mkdir -p "$W/_meta/tree/data"
  head -c $((24 * MIB)) /dev/urandom > "$W/_meta/tree/data/big.bin"   # no zero runs: extraction makes holes of those
  echo "small" > "$W/_meta/tree/data/small.txt"
  tar -C "$W/_meta/tree" -cf "$W/_meta/tree.tar" data
  old_target "$d"
  echo "user dotfile" > "$d/.profile"
  base=$(used "$d")
  feed_stalled "$W/_meta/tree.tar" $((12 * MIB))
  KILL_STDIN=$W/_meta/feed kill_when_written "$d" $((4 * MIB)) 'disk\.img|\.profile|\.cdi-import-extract\.[A-Za-z0-9]{6}' \
    "$CDI" --content-type archive --url - --dest "$d"
  stage=$(cd "$d" && ls -d .cdi-import-extract.* 2>/dev/null || true)
  [[ -n $stage ]] || fail "expected the killed import's staging directory"
  [[ $(listing_of "$d") == ".cdi-import-extract."??????" .profile disk.img" ]] || fail "after the kill: $(listing_of "$d")"
  cmp "$W/_meta/old.img" "$d/disk.img" || fail "the previous content changed"
  run_import --content-type archive --url "$W/_meta/tree.tar" --dest "$d"
  [[ $(listing_of "$d") == ".profile data disk.img" ]] || fail "after the next import: $(listing_of "$d")"
  cmp "$W/_meta/tree/data/big.bin" "$d/data/big.bin" || fail "data/big.bin differs"
  cmp "$W/_meta/tree/data/small.txt" "$d/data/small.txt" || fail "data/small.txt differs"
  cmp "$W/_meta/old.img" "$d/disk.img" || fail "the previous content changed"
  [[ $(cat "$d/.profile") == "user dotfile" ]] || fail "the user's dotfile changed"
  # the stale stage's space came back: without the new tree, usage is what it was before
  rm -rf "$d/data"
  sync
  local now
  now=$(used "$d")
  ((now == base)) || fail "space not returned: $now bytes used, $base before the killed run"
}

# --- no O_TMPFILE (fuse-overlayfs): the named partial, removed by the next run -----------------

t_kill_without_o_tmpfile_fallback() {
  require_root
  command -v fuse-overlayfs > /dev/null || fail "fuse-overlayfs is needed (scripts/install-deps.sh)"
  local e=$W/_meta/ext4 d=$W/dest/fuse base now partial
  ext4_mount "$e" 200
  mkdir -p "$e/lower" "$e/upper" "$e/work" "$d"
  fuse-overlayfs -o "lowerdir=$e/lower,upperdir=$e/upper,workdir=$e/work" "$d" || fail "fuse-overlayfs mount failed"
  echo "umount $d" >> "$CLEANUP_LIST"
  ! has_tmpfile "$d" || fail "fuse-overlayfs supports O_TMPFILE here: this test needs a filesystem without it"
  old_target "$d"
  echo "user dotfile" > "$d/.disk.img.swp"
  echo "user dotfile" > "$d/.profile"
  sync
  base=$(used "$e")
  feed_stalled "$IMG/raw.xz" $(($(stat -c %s "$IMG/raw.xz") / 2))
  # FUSE caches writes (they reach the ext4 below after the dirty-page expiry): wait for the partial
  # to reach 8 MiB as seen through the mount, and sync after the kill.
  partial_ready() {
    local p
    for p in "$d"/.disk.img.cdi-import-partial-*; do
      [[ -f $p ]] && (($(stat -c %s "$p") >= 8 * MIB)) && return 0
    done
    return 1
  }
  KILL_STDIN=$W/_meta/feed KILL_READY=partial_ready kill_when_written "$e" $((2 * MIB)) 'lower|upper|work' \
    "$CDI" --url - --dest "$d/disk.img"
  sync
  partial=$(cd "$d" && ls -A | grep -E '^\.disk\.img\.cdi-import-partial-[A-Za-z0-9]{6}$' || true)
  [[ -n $partial ]] || fail "expected the killed run's named partial in $d: $(listing_of "$d")"
  [[ $(listing_of "$d") == "$partial .disk.img.swp .profile disk.img" ]] || fail "after the kill: $(listing_of "$d")"
  cmp "$W/_meta/old.img" "$d/disk.img" || fail "the previous target changed"
  local partial_bytes
  partial_bytes=$(($(stat -c %b "$d/$partial") * 512))
  ((partial_bytes >= 1 * MIB)) || fail "the partial holds only $partial_bytes bytes"   # source.raw has holes
  now=$(used "$e")
  ((now >= base + partial_bytes - 64 * 1024)) || fail "df does not show the partial ($now, base $base)"
  # The next run removes the stale partial first and touches nothing else.
  run_import --url "$IMG/raw.xz" --dest "$d/disk.img"
  assert_same_as_qemu "$IMG/source.raw" "$d/disk.img" raw
  [[ $(listing_of "$d") == ".disk.img.swp .profile disk.img" ]] || fail "after the next import: $(listing_of "$d")"
  [[ $(cat "$d/.disk.img.swp") == "user dotfile" && $(cat "$d/.profile") == "user dotfile" ]] ||
    fail "a user's dotfile changed"
  # Space: the partial is gone; what is used now is the base minus the old target plus the new one.
  sync
  now=$(used "$e")
  local old_alloc=$((2 * MIB)) new_alloc
  new_alloc=$(($(stat -c %b "$e/upper/disk.img") * 512))
  local want=$((base - old_alloc + new_alloc)) slack=$((256 * 1024))
  ((now >= want - slack && now <= want + slack)) ||
    fail "space after the next import: $now used, expected about $want (stale partial not freed?)"
}

# --- pod mode: leftovers go before the free space is measured ---------------------------------

t_pod_removes_leftovers_before_measuring() {
  # A killed attempt on a volume without O_TMPFILE left its partial (and one archive attempt its
  # staging directory): the retry must measure the space as if they had never been there.
  require_root
  R=$W/root
  mkdir -p "$R/dev" "$R/shared"
  ext4_mount "$R/data" 96
  echo "user dotfile" > "$R/data/.profile"
  sync
  local free0
  free0=$(df --output=avail -B1 "$R/data" | tail -n 1 | tr -d ' ')
  head -c $((24 * MIB)) /dev/urandom > "$R/data/.disk.img.cdi-import-partial-AbC123"
  sync
  set +e
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$R" CDI_IMPORT_METRICS_LISTEN=off IMPORTER_SOURCE=none \
    IMPORTER_IMAGE_SIZE=1Gi FILESYSTEM_OVERHEAD=0 PREALLOCATION=false \
    timeout -k 5 "$CMD_TIMEOUT" "$CDI" pod-importer -v=1 -logtostderr > "$W/_meta/out" 2> "$W/_meta/err"
  LAST_RC=$?
  set -e
  ((LAST_RC == 0)) || { show_output; fail "pod-importer exited $LAST_RC"; }
  grep -q "Removed 1 leftover(s) of a killed import" "$W/_meta/err" || { show_output; fail "no removal logged"; }
  grep -q "Target size $free0\." "$W/_meta/err" || { show_output; fail "target size is not the free space without the partial ($free0)"; }
  [[ $(listing_of "$R/data") == ".profile disk.img" ]] || fail "data holds: $(listing_of "$R/data")"
  [[ $(cat "$R/data/.profile") == "user dotfile" ]] || fail "the user's dotfile changed"
}

run_test kill_raw_xz_copy_loop t_kill_raw_xz_copy_loop
run_test kill_qcow2_native_decoder t_kill_qcow2_native_decoder
run_test kill_vmdk_via_qemu_img t_kill_vmdk_via_qemu_img
run_test kill_archive_import t_kill_archive_import
run_test kill_without_o_tmpfile_fallback t_kill_without_o_tmpfile_fallback
run_test pod_removes_leftovers_before_measuring t_pod_removes_leftovers_before_measuring
finish
