# SPDX-License-Identifier: Apache-2.0
# Sourced by tests/image/test_images.sh: the podman plumbing (a local Debian 12 base made with
# debootstrap, image builds, containers started the way kubelet starts CDI's pods) and a small
# test harness (run_test / fail / finish, as tests/e2e/lib.sh but for containers).
#
# kubelet facts reproduced here (CDI HEAD, pkg/controller/common/util.go SetRestrictedSecurityContext):
#   every container of the importer / upload / size-detection pods: runAsUser 107, runAsNonRoot,
#   capabilities drop ALL, allowPrivilegeEscalation false, seccomp RuntimeDefault; pod fsGroup 107
#   when a container mounts volumes (kubelet makes volumes group 107, setgid, g+rwX and adds 107 to
#   the supplementary groups). No runAsGroup: the primary group is the image's (0 for USER 1001).
#   The poller's CronJob clears runAsUser and fsGroup: it runs as the image's USER 1001.
#   /dev/termination-log is a bind-mounted file kubelet creates with mode 0666.

# die MESSAGE: a setup failure; the whole phase fails loudly (never a skip).
die() {
  echo "test_images: $*" >&2
  exit 1
}

# --- podman on this machine ---------------------------------------------------------------------

# podman_setup WORK: PODMAN (runc), ULIMITS (never above this shell's own limits: runc cannot raise
# RLIMIT_NOFILE past them, and NPROC must stay below conmon's), CONTAINERS_CONF with the same
# default ulimits (pod infra containers take no --ulimit flag).
podman_setup() {
  local work=$1 nofile_soft nofile_hard nproc_soft nproc_hard
  command -v podman >/dev/null || die "podman is not installed (scripts/install-deps.sh installs it)"
  command -v runc >/dev/null || die "runc is not installed (scripts/install-deps.sh installs it)"
  [[ $(id -u) == 0 ]] || die "needs root (rootful podman with runc, loop devices, nsenter)"
  nofile_soft=$(ulimit -Sn); nofile_hard=$(ulimit -Hn)
  nproc_soft=$(ulimit -Su); nproc_hard=$(ulimit -Hu)
  [[ $nofile_soft == unlimited ]] && nofile_soft=1048576
  [[ $nofile_hard == unlimited ]] && nofile_hard=1048576
  [[ $nproc_soft == unlimited ]] && nproc_soft=4096
  [[ $nproc_hard == unlimited ]] && nproc_hard=4096
  ((nproc_soft > 4096)) && nproc_soft=4096
  ((nproc_hard > 4096)) && nproc_hard=4096
  ((nproc_soft > nproc_hard)) && nproc_soft=$nproc_hard
  ULIMITS=(--ulimit "nproc=$nproc_soft:$nproc_hard" --ulimit "nofile=$nofile_soft:$nofile_hard")
  mkdir -p "$work"
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
    "$nofile_soft" "$nofile_hard" "$nproc_soft" "$nproc_hard" > "$work/containers.conf"
  export CONTAINERS_CONF=$work/containers.conf
  PODMAN=(podman --runtime runc)
  "${PODMAN[@]}" info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}} cgroup{{.Host.CgroupsVersion}}' \
    > "$work/podman-info" 2>&1 || { cat "$work/podman-info" >&2; die "podman does not work on this machine"; }
  echo "podman: $(podman --version | cut -d' ' -f3), $(cat "$work/podman-info")"
}

# apt_mirror: the Debian mirror this machine's apt is configured with (deb822 or one-line format).
apt_mirror() {
  local m=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $m && -f /etc/apt/sources.list ]]; then
    m=$(awk '$1 == "deb" && $0 ~ /bookworm/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list)
  fi
  [[ -n $m ]] || die "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  echo "$m"
}

# base_image WORK TAG: a Debian 12 minbase rootfs (debootstrap, cached as WORK/debian-12-minbase.tar)
# imported as TAG unless TAG already is that import (its id is remembered next to the tarball).
base_image() {
  local work=$1 tag=$2 tar=$1/debian-12-minbase.tar mirror start
  mkdir -p "$work"
  if [[ ! -s $tar ]]; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/install-deps.sh installs it)"
    mirror=$(apt_mirror)
    echo "debootstrap --variant=minbase bookworm from $mirror"
    start=$SECONDS
    rm -rf "$work/rootfs"
    debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 ||
      { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log: $work/debootstrap.log)"; }
    # apt inside the image uses the same mirror
    echo "deb $mirror bookworm main" > "$work/rootfs/etc/apt/sources.list"
    # as Debian's official images (debuerreotype): no package lists or downloaded .debs
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    mkdir -p "$work/rootfs/var/lib/apt/lists/partial"
    tar -C "$work/rootfs" -c . > "$tar.tmp" && mv "$tar.tmp" "$tar" || die "cannot write $tar"
    rm -rf "$work/rootfs"
    echo "debootstrap: $((SECONDS - start)) s"
  fi
  local want have
  want=$(cat "$work/imported.id" 2>/dev/null || true)
  have=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  if [[ -z $want || $want != "$have" || $tar -nt $work/imported.id ]]; then
    start=$SECONDS
    "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' - "$tag" < "$tar" > "$work/import.out" 2>&1 ||
      { cat "$work/import.out" >&2; die "podman import of $tar failed"; }
    "${PODMAN[@]}" image inspect --format '{{.Id}}' "$tag" > "$work/imported.id"
    echo "podman import $tag: $((SECONDS - start)) s"
  fi
}

# --- test harness -------------------------------------------------------------------------------

PASSED=0
FAILED=0
FAILED_NAMES=()
CLEANUP_CMDS=()

# at_exit COMMAND...: run at exit (newest first), e.g. removing a pod or detaching a loop device.
at_exit() { CLEANUP_CMDS+=("$(printf '%q ' "$@")"); }
run_cleanup() {
  local i
  for ((i = ${#CLEANUP_CMDS[@]} - 1; i >= 0; i--)); do eval "${CLEANUP_CMDS[i]}" >/dev/null 2>&1; done
  CLEANUP_CMDS=()
}

# run_test NAME FUNCTION: one test in a subshell with set -e, in its own directory $W.
run_test() {
  local name=$1 fn=$2 rc start=$SECONDS
  if [[ -n ${FILTER:-} && $name != *$FILTER* ]]; then return 0; fi
  W=$T/$name
  rm -rf "$W"; mkdir -p "$W/_meta"
  (
    trap run_cleanup EXIT
    set -e
    cd "$W"
    "$fn"
  ) > "$W/_meta/log" 2>&1
  rc=$?
  if ((rc == 0)); then
    PASSED=$((PASSED + 1))
    printf 'ok    %-34s %4d s\n' "$name" $((SECONDS - start))
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$name")
    printf 'FAIL  %-34s %4d s\n' "$name" $((SECONDS - start))
    sed 's/^/      | /' "$W/_meta/log"
  fi
}

fail() {
  echo "FAILED: $*" >&2
  exit 1
}

finish() {
  echo "$PASSED passed, $FAILED failed${FAILED_NAMES[*]:+: ${FAILED_NAMES[*]}}"
  ((FAILED == 0 && PASSED > 0))
}

# --- kubelet-like containers --------------------------------------------------------------------

# volume_dir DIR: an empty directory as kubelet presents a PVC with fsGroup 107 (group 107, setgid,
# group-writable). emptydir DIR: an emptyDir volume (mode 0777).
volume_dir() { mkdir -p "$1"; chgrp 107 "$1"; chmod 2775 "$1"; }
emptydir() { mkdir -p "$1"; chmod 0777 "$1"; }

# termination_file PATH: the file kubelet bind-mounts at /dev/termination-log (empty, 0666).
termination_file() { : > "$1"; chmod 0666 "$1"; }

# KUBE_SC: the restricted security context of CDI's worker pods (see the header).
KUBE_SC=(--user 107 --group-add 107 --cap-drop ALL --security-opt no-new-privileges)

# kube_run LABEL PODMAN_RUN_ARGS... -- IMAGE [ARGS...]: podman run (foreground, removed after), the
# image's entrypoint unless the arguments override it; stdout/stderr in $W/_meta/LABEL.{out,err},
# the exit code in LAST_RC, wall time in LAST_SECS.
kube_run() {
  local label=$1 t0
  shift
  local args=()
  while [[ $1 != -- ]]; do args+=("$1"); shift; done
  shift
  t0=$EPOCHREALTIME
  set +e
  timeout -k 10 "${CTR_TIMEOUT:-180}" "${PODMAN[@]}" run --rm --pull=never "${ULIMITS[@]}" "${args[@]}" "$@" \
    > "$W/_meta/$label.out" 2> "$W/_meta/$label.err"
  LAST_RC=$?
  set -e
  LAST_SECS=$(echo "$EPOCHREALTIME - $t0" | bc)
  echo "\$ podman run ${args[*]} $* -> exit $LAST_RC (${LAST_SECS} s)" >&2
}

show() {
  local f
  for f in "$W"/_meta/*.out "$W"/_meta/*.err; do
    [[ -s $f ]] && { echo "--- $(basename "$f")"; tail -40 "$f"; }
  done >&2
  return 0
}

# expect_term EXIT FILE TEXT: exit code and the exact bytes of the termination-log file.
expect_term() {
  local want_rc=$1 file=$2 want=$3 got
  ((LAST_RC == want_rc)) || { show; fail "exit $LAST_RC, expected $want_rc"; }
  got=$(cat "$file"; echo x)
  got=${got%x}
  [[ $got == "$want" ]] || { show; fail "termination message: '$got', expected '$want'"; }
}

# assert_raw_prefix IMAGE FILE SIZE: FILE is SIZE bytes: qemu-img's raw of IMAGE, then zeros.
assert_raw_prefix() {
  local exp=$W/_meta/expected.raw
  qemu-img convert -q -O raw "$1" "$exp"
  truncate -s "$3" "$exp"
  [[ $(stat -c %s "$2") == "$3" ]] || fail "$2 is $(stat -c %s "$2") bytes, expected $3"
  cmp "$exp" "$2" >&2 || fail "$2 differs from qemu-img convert of $1"
  rm -f "$exp"
}

# pod_create NAME: a pod with its own network namespace holding only loopback (127.0.0.1), as a
# Kubernetes pod's containers share one; POD_NETNS_PID is a process inside it (for nsenter).
pod_create() {
  "${PODMAN[@]}" pod rm -f "$1" >/dev/null 2>&1 || true
  "${PODMAN[@]}" pod create --name "$1" --network none > "$W/_meta/pod.out" 2>&1 ||
    { cat "$W/_meta/pod.out" >&2; fail "podman pod create failed"; }
  at_exit "${PODMAN[@]}" pod rm -f "$1"
  "${PODMAN[@]}" pod start "$1" > /dev/null 2>&1 || fail "podman pod start failed"
  local infra
  infra=$("${PODMAN[@]}" pod inspect --format '{{.InfraContainerID}}' "$1")
  POD_NETNS_PID=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$infra")
  [[ $POD_NETNS_PID -gt 0 ]] || fail "no infra process in pod $1"
}

# in_pod COMMAND...: runs a host command (curl) inside the pod's network namespace.
in_pod() { nsenter -t "$POD_NETNS_PID" -n "$@"; }

# ctr_wait NAME [SECONDS]: waits for a detached container to exit; LAST_RC is its exit code.
ctr_wait() {
  local i
  for ((i = 0; i < ${2:-60} * 10; i++)); do
    if [[ $("${PODMAN[@]}" inspect --format '{{.State.Status}}' "$1" 2>/dev/null) == exited ]]; then
      LAST_RC=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$1")
      return 0
    fi
    sleep 0.1
  done
  "${PODMAN[@]}" logs "$1" >&2 || true
  fail "container $1 did not exit within ${2:-60} s"
}
