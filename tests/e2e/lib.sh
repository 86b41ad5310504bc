# SPDX-License-Identifier: Apache-2.0
# Shared helpers of the end-to-end tests. Sourced by tests/e2e/test_*.sh, which are run as
#   test_<group>.sh CDI_IMPORT_BINARY IMAGE_CACHE_DIR [TEST_NAME_FILTER]
# (CTest passes both; see tests/e2e/CMakeLists.txt). The image cache is filled by make-images.sh
# (run here too when missing, so a script can be run by hand).
#
# A test is a function run with `run_test NAME FUNCTION [ARGS]` in a subshell with `set -e`, inside
# its own working directory $W (also the cwd). Any failing command or assertion ends that test. Use:
#   $W/dest/   target directory for imports (assert_nothing_outside checks nothing else changed)
#   $W/scratch scratch directory for --scratch-dir
#   $W/_meta/  the harness' own files (captured output, snapshots); excluded from listings
# Every run_test prints "ok"/"FAIL" and, on failure, the test's log. `finish` prints the closing
# "N passed, N failed" line and sets the script's exit status.

set -uo pipefail
export LC_ALL=C

if (($# < 2)); then
  echo "usage: $0 CDI_IMPORT_BINARY IMAGE_CACHE_DIR [TEST_NAME_FILTER]" >&2
  exit 2
fi
CDI=$(realpath "$1")
IMG=$2
FILTER=${3:-}
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly MIB=$((1024 * 1024))
readonly SOURCE_SIZE=$((64 * MIB))
readonly ERR_PREFIX="cdi-import: error: "
# Per-command time limit: nothing here should take more than a few seconds; a hang must fail.
CMD_TIMEOUT=${CDI_E2E_CMD_TIMEOUT:-120}
# Paths hostile tars try to reach (also created by make-images.sh's tars).
readonly ESCAPE_DIR=/tmp/cdi-e2e-escape

[[ -x $CDI ]] || { echo "cdi-import binary not found or not executable: $CDI" >&2; exit 1; }
mkdir -p "$IMG"
IMG=$(cd "$IMG" && pwd)
# make-images.sh is idempotent; the lock serialises scripts started in parallel by hand.
flock "$IMG/.lock" "$E2E_DIR/make-images.sh" "$IMG" || { echo "make-images.sh failed" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/cdi-e2e.$(basename "$0" .sh).XXXXXX")
# Resources to release at exit, one per line: "loop DEV", "umount DIR", "kill PID".
CLEANUP_LIST=$T/.cleanup
: > "$CLEANUP_LIST"
PASSED=0
FAILED=0
FAILED_NAMES=()

# release_resources: kills, detaches and unmounts what the tests registered (newest first).
release_resources() {
  local kind what
  [[ -s $CLEANUP_LIST ]] || return 0
  tac "$CLEANUP_LIST" | while read -r kind what; do
    case $kind in
      kill) kill -KILL "$what" 2>/dev/null ;;
      loop) losetup -d "$what" 2>/dev/null ;;
      umount) umount -l "$what" 2>/dev/null ;;
    esac
  done
  : > "$CLEANUP_LIST"
}

cleanup() {
  if [[ -f $CLEANUP_LIST ]]; then release_resources; fi
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- running tests ---------------------------------------------------------------------------

# run_test NAME FUNCTION [ARGS...]: runs one test in a fresh directory; counts pass/fail.
run_test() {
  local name=$1
  shift
  if [[ -n $FILTER && $name != *$FILTER* ]]; then
    return 0
  fi
  local w=$T/$name
  mkdir -p "$w/dest" "$w/scratch" "$w/_meta"
  local start=$EPOCHREALTIME rc
  (
    set -e
    W=$w
    cd "$w"
    "$@"
  ) > "$w/_meta/log" 2>&1
  rc=$?
  release_resources
  local ms
  ms=$(( (${EPOCHREALTIME/./} - ${start/./}) / 1000 ))
  if ((rc == 0)); then
    PASSED=$((PASSED + 1))
    printf 'ok    %-50s %6d ms\n' "$name" "$ms"
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$name")
    printf 'FAIL  %-50s %6d ms\n' "$name" "$ms"
    sed 's/^/      | /' "$w/_meta/log" | tail -n 40
  fi
  # keep the tmp footprint small: a passed test's files are not needed any more
  if ((rc == 0)); then rm -rf "$w"; fi
}

# finish: prints the closing line and exits with the script's status.
finish() {
  if ((FAILED > 0)); then
    echo "failed tests: ${FAILED_NAMES[*]}"
  fi
  echo "$(basename "$0" .sh): $PASSED passed, $FAILED failed"
  ((FAILED == 0 && PASSED > 0))
  exit $?
}

# fail MESSAGE...: ends the current test with a message.
fail() {
  echo "ASSERTION FAILED: $*" >&2
  return 1
}

# --- resources released at exit --------------------------------------------------------------

# make_loop FILE [LOSETUP_OPTIONS...]: attaches FILE to a free loop device, prints the device.
make_loop() {
  local file=$1
  shift
  local dev
  dev=$(losetup --find --show "$@" "$file") || fail "losetup failed for $file"
  echo "loop $dev" >> "$CLEANUP_LIST"
  echo "$dev"
}

# make_tmpfs DIR SIZE: mounts a tmpfs of SIZE at DIR (created).
make_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2" tmpfs "$1" || fail "mounting a tmpfs at $1"
  echo "umount $1" >> "$CLEANUP_LIST"
}

# ext4_mount DIR MIB: a fresh ext4 of MIB MiB on a loop device mounted at DIR, emptied (no
# lost+found), so that `ls -A DIR` shows only what the test and cdi-import put there.
ext4_mount() {
  local dir=$1 mib=$2 img
  img=$W/_meta/$(basename "$dir").ext4
  truncate -s "${mib}M" "$img"
  mkfs.ext4 -q -F -m 0 -E lazy_itable_init=0,lazy_journal_init=0 "$img" || fail "mkfs.ext4 failed"
  mkdir -p "$dir"
  mount -o loop "$img" "$dir" || fail "mounting $img"
  echo "umount $dir" >> "$CLEANUP_LIST"
  rmdir "$dir/lost+found"
}

# register_pid PID: the process is killed at exit if still alive.
# wait_server_port LOG PID: sets PORT from the server's "listening on port N" line in LOG; fails
# (showing LOG) if the server exits first or no port appears within 10 s.
wait_server_port() {
  local log=$1 pid=$2 i
  PORT=
  for i in $(seq 200); do
    PORT=$(grep -oE 'listening on port [0-9]+' "$log" | head -n 1 | awk '{print $4}' || true)
    [[ -n $PORT ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n $PORT ]] || { cat "$log" >&2; fail "upload server did not start"; }
}

register_pid() {
  echo "kill $1" >> "$CLEANUP_LIST"
}

# --- certificates (openssl; EC P-256) ----------------------------------------------------------

# cert_ca DIR NAME: a self-signed CA, DIR/NAME.crt and DIR/NAME.key (DIR created).
cert_ca() {
  mkdir -p "$1"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1/$2.key" -out "$1/$2.crt" \
    -days 30 -subj "/CN=$2 (cdi-import test CA)" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# cert_leaf DIR NAME CN CA server|client: DIR/NAME.crt + .key for subject CN (may contain "/",
# as CDI's clone CN does), signed by DIR/CA; server certificates are for localhost and 127.0.0.1.
cert_leaf() {
  local d=$1 name=$2 cn=$3 ca=$4 ext
  case $5 in
    server) ext=$'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth' ;;
    client) ext="extendedKeyUsage=clientAuth" ;;
    *) fail "cert_leaf: kind $5" ;;
  esac
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/$name.key" \
    -out "$d/$name.csr" -subj "/CN=${cn//\//\\/}" 2>/dev/null &&
    printf '%s\n' "$ext" "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" > "$d/$name.ext" &&
    openssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" -CAcreateserial -out "$d/$name.crt" \
      -days 30 -extfile "$d/$name.ext" 2>/dev/null
}

# --- running cdi-import ----------------------------------------------------------------------

# snapshot: records the listing of $W (without _meta/) and a time stamp, for
# assert_nothing_outside. Called by run_import / expect_exit before each run.
snapshot() {
  listing > "$W/_meta/snapshot"
  touch "$W/_meta/stamp"
}

# listing: every path under $W except _meta, as ./relative/path, sorted.
listing() {
  (cd "$W" && find . -mindepth 1 -path ./_meta -prune -o -print | sort)
}

# cdi ARGS...: runs cdi-import with a time limit; stdout -> $W/_meta/out, stderr -> $W/_meta/err,
# exit code -> $LAST_RC. Never fails by itself.
cdi() {
  snapshot
  set +e
  timeout -k 5 "$CMD_TIMEOUT" "$CDI" "$@" > "$W/_meta/out" 2> "$W/_meta/err"
  LAST_RC=$?
  set -e
  echo "\$ cdi-import $* -> exit $LAST_RC" >&2
  return 0
}

# cdi_rss ARGS...: like cdi, with the peak RSS (/usr/bin/time) in $W/_meta/rss for assert_rss_under.
cdi_rss() {
  snapshot
  set +e
  /usr/bin/time -f '%M' -o "$W/_meta/rss" timeout -k 5 "$CMD_TIMEOUT" "$CDI" "$@" > "$W/_meta/out" 2> "$W/_meta/err"
  LAST_RC=$?
  set -e
  echo "\$ cdi-import $* -> exit $LAST_RC, peak RSS $(tail -n 1 "$W/_meta/rss") KiB" >&2
  return 0
}

# assert_rss_under MIB: the last cdi_rss peaked below MIB MiB (a sanitizer build's shadow memory
# is part of its RSS: there the bound is 512 MiB).
assert_rss_under() {
  local rss max=$(($1 * 1024))
  rss=$(tail -n 1 "$W/_meta/rss")
  [[ $(ldd "$CDI" 2> /dev/null) == *libasan* ]] && max=$((512 * 1024))
  ((rss < max)) || fail "peak RSS ${rss} KiB (bound $max KiB)"
}

# info_why PATTERN: prints the "why:" line of the last `cdi info` that matches PATTERN (grep -e);
# fails the test when there is none. Its text is what assert_plan_as_info looks for.
info_why() {
  grep -e "why: $1" "$W/_meta/out" || { show_output; fail "info gives no reason matching: $1"; }
}

# assert_plan_as_info WHY: the import's -v log ran the plan `cdi info` printed (WHY: info_why's line).
assert_plan_as_info() {
  grep -qF "plan: ${1#*why: }" "$W/_meta/err" || { show_output; fail "the import ran another plan than info printed"; }
}

# importer_pod VAR=VALUE...: runs $POD (cdi-importer) -alsologtostderr -v=1 rooted at $R
# (CDI_IMPORT_ROOT) with only CDI's environment: an HTTP kubevirt import (defaults below,
# overridden by the arguments: env takes the last). stderr -> $W/_meta/err, exit code -> $LAST_RC.
importer_pod() {
  set +e
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$R" CDI_IMPORT_METRICS_LISTEN=off \
    IMPORTER_SOURCE=http IMPORTER_CONTENTTYPE=kubevirt IMPORTER_ENDPOINT= IMPORTER_IMAGE_SIZE= \
    FILESYSTEM_OVERHEAD=0.06 PREALLOCATION=false OWNER_UID=uid-1 "$@" \
    timeout -k 5 "$CMD_TIMEOUT" "$POD" -alsologtostderr -v=1 > "$W/_meta/out" 2> "$W/_meta/err"
  LAST_RC=$?
  set -e
  echo "\$ cdi-importer $* -> exit $LAST_RC" >&2
}

# cdi_stdin INPUT_FILE ARGS...: like cdi, with INPUT_FILE piped into standard input through cat
# (a pipe, not a seekable file).
cdi_stdin() {
  local input=$1
  shift
  snapshot
  set +e
  cat "$input" | timeout -k 5 "$CMD_TIMEOUT" "$CDI" "$@" > "$W/_meta/out" 2> "$W/_meta/err"
  LAST_RC=${PIPESTATUS[1]}
  set -e
  echo "\$ cat $input | cdi-import $* -> exit $LAST_RC" >&2
  return 0
}

show_output() {
  echo "--- stdout:" >&2
  head -c 4000 "$W/_meta/out" >&2
  echo "--- stderr:" >&2
  head -c 4000 "$W/_meta/err" >&2
}

# run_import ARGS...: cdi-import must succeed (exit 0, no error line on stderr).
run_import() {
  cdi "$@"
  check_success
}

# run_import_stdin INPUT_FILE ARGS...: as run_import, with INPUT_FILE piped into stdin.
run_import_stdin() {
  cdi_stdin "$@"
  check_success
}

check_success() {
  if ((LAST_RC != 0)); then
    show_output
    fail "cdi-import exited $LAST_RC, expected 0"
  fi
  if grep -q "^$ERR_PREFIX" "$W/_meta/err"; then
    show_output
    fail "cdi-import succeeded but printed an error line"
  fi
}

# expect_exit CODES ARGS...: cdi-import must exit with one of CODES ("4" or "4|6") and print
# exactly one line on stderr, starting with "cdi-import: error: " and naming a cause.
expect_exit() {
  local codes=$1
  shift
  cdi "$@"
  check_error "$codes"
}

# expect_exit_stdin CODES INPUT_FILE ARGS...
expect_exit_stdin() {
  local codes=$1
  shift
  cdi_stdin "$@"
  check_error "$codes"
}

check_error() {
  local codes=$1
  if [[ ! "|$codes|" == *"|$LAST_RC|"* ]]; then
    show_output
    fail "cdi-import exited $LAST_RC, expected $codes"
  fi
  local lines
  lines=$(wc -l < "$W/_meta/err")
  if ((lines != 1)); then
    show_output
    fail "expected exactly one line on stderr, got $lines"
  fi
  if ! grep -q "^${ERR_PREFIX}..........*" "$W/_meta/err"; then
    show_output
    fail "stderr does not start with '$ERR_PREFIX' followed by a message"
  fi
  echo "  error line: $(cat "$W/_meta/err")" >&2
}

# error_line: the error message of the last run (for pattern checks).
error_line() { cat "$W/_meta/err"; }

# assert_error_matches EXTENDED_REGEX: the last stderr matches (case-insensitive).
assert_error_matches() {
  grep -qiE -- "$1" "$W/_meta/err" || { show_output; fail "stderr does not match /$1/"; }
}

# cdi_watch_scratch ARGS...: like `cdi`, with --scratch-dir on a fresh 64 MiB tmpfs whose usage is
# sampled every 20 ms while cdi-import runs (spool files are O_TMPFILE: invisible in listings, but
# not in the filesystem's usage). Fails unless it stayed empty during and after the run.
cdi_watch_scratch() {
  local sd=$W/_meta/scratchfs
  make_tmpfs "$sd" 64m
  local base peak used
  base=$(df --output=used -B1 "$sd" | tail -n 1)
  peak=$base
  snapshot
  set +e
  timeout -k 5 "$CMD_TIMEOUT" "$CDI" --scratch-dir "$sd" "$@" > "$W/_meta/out" 2> "$W/_meta/err" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    used=$(df --output=used -B1 "$sd" | tail -n 1)
    ((used > peak)) && peak=$used
    sleep 0.02
  done
  wait "$pid"
  LAST_RC=$?
  set -e
  echo "\$ cdi-import --scratch-dir $sd $* -> exit $LAST_RC (scratch peak $((peak - base)) bytes)" >&2
  ((peak == base)) || fail "scratch was used: $((peak - base)) bytes"
  [[ -z $(ls -A "$sd") ]] || fail "scratch not empty after the run"
}

# --- assertions ------------------------------------------------------------------------------

# same_content A B: A and B (files or devices) hold the same bytes over B's size. cmp for small
# files; above 256 MiB `qemu-img compare`, which skips holes (cmp on a sparse 2 GiB file spends
# tens of seconds filling the page cache with zero pages).
same_content() {
  local n
  n=$(size_of "$2")
  if ((n <= 256 * MIB)); then
    cmp -n "$n" "$1" "$2" >&2
  else
    # (qemu-img compare reads a missing tail as zeros: only use it on equal sizes)
    (($(size_of "$1") == n)) || { echo "same_content: sizes differ above 256 MiB" >&2; return 1; }
    qemu-img compare -q -f raw -F raw "$1" "$2" >&2
  fi
}

# size_of FILE_OR_DEVICE: size in bytes.
size_of() {
  if [[ -b $1 ]]; then blockdev --getsize64 "$1"; else stat -c %s "$1"; fi
}

# assert_same_as_qemu SRC OUT [QEMU_FORMAT]: OUT has exactly the bytes `qemu-img convert -O raw`
# makes of SRC (an uncompressed image), same size included.
assert_same_as_qemu() {
  local src=$1 out=$2 fmt=${3:-}
  local exp=$W/_meta/expected.raw
  [[ -f $out ]] || fail "$out does not exist"
  qemu-img convert -q ${fmt:+-f "$fmt"} -O raw "$src" "$exp" || fail "qemu-img convert of $src failed"
  local want got
  want=$(stat -c %s "$exp")
  got=$(stat -c %s "$out")
  ((want == got)) || { rm -f "$exp"; fail "$out: size $got, qemu-img says $want ($src)"; }
  same_content "$out" "$exp" || { rm -f "$exp"; fail "$out differs from qemu-img convert -O raw of $src"; }
  rm -f "$exp"
}

# assert_same_bytes A B: identical size and content.
assert_same_bytes() {
  local a b
  a=$(stat -c %s "$1")
  b=$(stat -c %s "$2")
  ((a == b)) || fail "$1 is $a bytes, $2 is $b bytes"
  cmp "$1" "$2" >&2 || fail "$1 and $2 differ"
}

# assert_allocated_below FILE BYTES: the file's allocated space (st_blocks * 512) is below BYTES.
assert_allocated_below() {
  local blocks
  blocks=$(stat -c %b "$1")
  ((blocks * 512 < $2)) || fail "$1 allocates $((blocks * 512)) bytes, expected < $2 (holes not punched?)"
}

# assert_no_scratch_left DIR: the scratch directory exists and is empty.
assert_no_scratch_left() {
  [[ -d $1 ]] || fail "scratch directory $1 was removed"
  local left
  left=$(find "$1" -mindepth 1 | head -n 5)
  [[ -z $left ]] || fail "scratch files left behind: $left"
}

# assert_nothing_outside TARGETDIR: since the last cdi-import run nothing appeared, vanished or
# changed in $W outside TARGETDIR, the image cache is unchanged, and nothing reached $ESCAPE_DIR.
assert_nothing_outside() {
  local target=$1
  local rel=${target#"$W"/}
  local before now
  local drop='$0 != p && index($0, p "/") != 1'
  before=$(awk -v p="./$rel" "$drop" "$W/_meta/snapshot")
  now=$(listing | awk -v p="./$rel" "$drop")
  if [[ $before != "$now" ]]; then
    diff <(echo "$before") <(echo "$now") >&2 || true
    fail "files appeared or vanished outside $target"
  fi
  local changed
  changed=$( (cd "$W" && find . -mindepth 1 \( -path ./_meta -o -path "./$rel" \) -prune \
                 -o ! -type d -newer "$W/_meta/stamp" -print) | head -n 5)
  [[ -z $changed ]] || fail "files changed outside $target: $changed"
  # (_ranges.PID/: test_http's own served files, made while other scripts run in parallel)
  changed=$(find "$IMG" -mindepth 1 -name '_ranges.*' -prune -o ! -type d -newer "$W/_meta/stamp" ! -name .lock -print | head -n 5)
  [[ -z $changed ]] || fail "the image cache was modified: $changed"
  [[ ! -e $ESCAPE_DIR ]] || fail "something was written to $ESCAPE_DIR: $(find "$ESCAPE_DIR" | head -n 5)"
}

# assert_failed_cleanly DEST [SCRATCH]: after a failed import: nothing at DEST, its directory holds
# no leftovers (temp files), scratch is empty and nothing changed outside the target directory.
assert_failed_cleanly() {
  local dest=$1 scratch=${2:-$W/scratch}
  [[ ! -e $dest && ! -L $dest ]] || fail "a failed import left $dest behind"
  local dir left
  dir=$(dirname "$dest")
  left=$(find "$dir" -mindepth 1 | head -n 5)
  [[ -z $left ]] || fail "a failed import left files in $dir: $left"
  assert_no_scratch_left "$scratch"
  assert_nothing_outside "$dir"
}

# assert_info_chain URL CHAIN [INFO_ARGS...]: `cdi-import info URL` prints exactly this chain
# (e.g. "file > gzip > qcow2") and writes nothing.
assert_info_chain() {
  local url=$1 want=$2
  shift 2
  cdi info "$url" "$@"
  check_success
  local got
  got=$(grep -oE '(file|stdin|block|device|-) > [a-z0-9_-]+(\[[^]]*\])?( > [a-z0-9_-]+(\[[^]]*\])?)*' "$W/_meta/out" \
          | head -n 1 || true)
  # annotations such as "tar[disk.img]" are compared only when the expected chain has them
  [[ $want == *'['* ]] || got=$(sed 's/\[[^]]*\]//g' <<< "$got")
  [[ $got == "$want" ]] || { show_output; fail "info chain of $url: '$got', expected '$want'"; }
  assert_wrote_nothing
}

# assert_wrote_nothing: since the last cdi-import run nothing in $W appeared, vanished or changed.
assert_wrote_nothing() {
  if [[ $(listing) != "$(cat "$W/_meta/snapshot")" ]]; then
    diff "$W/_meta/snapshot" <(listing) >&2 || true
    fail "files appeared or vanished"
  fi
  local changed
  changed=$( (cd "$W" && find . -mindepth 1 -path ./_meta -prune -o ! -type d -newer "$W/_meta/stamp" -print) | head -n 5)
  [[ -z $changed ]] || fail "files changed: $changed"
}

# json_number_anywhere FILE NUMBER: the JSON document in FILE holds NUMBER as some value.
json_number_anywhere() {
  jq -e --argjson n "$2" '[.. | numbers] | index($n) != null' "$1" > /dev/null
}

# fill_ff FILE SIZE: a file of SIZE 0xFF bytes (a "dirty" device).
fill_ff() {
  head -c "$2" /dev/zero | tr '\0' '\377' > "$1"
}

# is_zero FILE_OR_DEV OFFSET LENGTH: the range reads back as zeros.
is_zero() {
  if (($2 == 0 && $3 == $(size_of "$1") && $3 > 256 * MIB)); then
    # whole file: qemu-img compare with an empty file treats the missing part as zeros
    : > "$W/_meta/empty.raw"
    qemu-img compare -q -f raw -F raw "$1" "$W/_meta/empty.raw" 2>/dev/null
  else
    dd if="$1" bs=64K iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none | cmp -s -n "$3" - /dev/zero
  fi
}

require_root() {
  [[ $(id -u) == 0 ]] || fail "this test needs root (loop devices, tmpfs); CI runs as root"
}
