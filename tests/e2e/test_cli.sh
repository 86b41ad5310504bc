#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Command line: help/version, usage errors (exit 2), missing sources (9), progress output, the
# summary line, and cancellation by SIGTERM/SIGINT (130) leaving no temp, scratch or dest files.
source "$(dirname "$0")/lib.sh"

t_help_and_version() {
  cdi --help
  check_success
  grep -q -- '--url' "$W/_meta/out" || { show_output; fail "--help does not mention --url"; }
  cdi --version
  check_success
  grep -qE '[0-9]+\.[0-9]+\.[0-9]+' "$W/_meta/out" || { show_output; fail "--version prints no version"; }
  cdi info --help
  check_success
}

t_usage_errors() {
  expect_exit 2
  expect_exit 2 --url "$IMG/raw.gz"                                   # no --dest
  expect_exit 2 --dest "$W/dest/disk.raw"                             # no --url
  expect_exit 2 --url "$IMG/raw.gz" --dest "$W/dest/disk.raw" --no-such-option
  expect_exit 2 --url "$IMG/raw.gz" --dest "$W/dest/disk.raw" --image-size 10Zq
  expect_exit 2 --url "$IMG/raw.gz" --dest "$W/dest/disk.raw" --image-size -5Gi
  expect_exit 2 --url "$IMG/raw.gz" --dest "$W/dest/disk.raw" --content-type floppy
  expect_exit 2 --url "$IMG/raw.gz" --dest "$W/dest/disk.raw" --progress loud
  expect_exit 2 --url "gopher://127.0.0.1/x" --dest "$W/dest/disk.raw"
  [[ -z $(ls -A "$W/dest") ]] || fail "a usage error wrote to dest"
}

t_missing_source() {
  expect_exit 9 --url "$W/_meta/nonexistent.qcow2" --dest "$W/dest/disk.raw"
  assert_error_matches 'nonexistent\.qcow2'
  assert_failed_cleanly "$W/dest/disk.raw"
  expect_exit 9 --url "file://$W/_meta/nonexistent.qcow2" --dest "$W/dest/disk.raw"
  expect_exit 9 info "$W/_meta/nonexistent.qcow2"
}

t_dest_directory_missing() {
  expect_exit '3|9' --url "$IMG/raw.gz" --dest "$W/dest/no/such/dir/disk.raw"
  assert_nothing_outside "$W/dest"
}

t_explicit_import_subcommand() {
  run_import import --url "$IMG/qcow2.gz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
}

t_summary_line() {
  run_import --url "$IMG/raw.xz" --dest "$W/dest/disk.raw" --progress none
  local lines
  lines=$(wc -l < "$W/_meta/err")
  ((lines == 1)) || { show_output; fail "expected one summary line on stderr, got $lines lines"; }
  grep -q 'xz' "$W/_meta/err" || { show_output; fail "summary does not name the source chain"; }
  [[ -z $(cat "$W/_meta/out") ]] || { show_output; fail "import printed to stdout"; }
}

# to_bytes "1.5 MiB": a size as the summary prints it (util::format_bytes), in bytes.
to_bytes() {
  awk -v s="$1" 'BEGIN { split(s, a, " "); m["B"] = 0; m["KiB"] = 1; m["MiB"] = 2; m["GiB"] = 3; m["TiB"] = 4
                         if (!(a[2] in m)) exit 1; printf "%.0f\n", a[1] * 1024 ^ m[a[2]] }'
}

# The summary's headline rate is image bytes per second, not bytes read: a 1 GiB qcow2 holding 1 MiB
# of data reads about 1 MiB, so its image rate is about a thousand times its read rate, in the
# ratio of the image and read sizes the same line prints.
t_summary_rate_is_image_rate() {
  run_import --url "$IMG/big-virtual.qcow2" --dest "$W/dest/disk.raw" --progress none
  local line re image read image_rate read_rate
  line=$(tail -n 1 "$W/_meta/err")
  re=': ([0-9.]+ [KMGT]?i?B) image, ([0-9.]+ [KMGT]?i?B) read, .* in [0-9.]+s: ([0-9.]+ [KMGT]?i?B)/s image, read ([0-9.]+ [KMGT]?i?B)/s, wrote [0-9.]+ [KMGT]?i?B/s, via '
  [[ $line =~ $re ]] || { show_output; fail "summary does not print image, read and written rates: $line"; }
  image=$(to_bytes "${BASH_REMATCH[1]}") read=$(to_bytes "${BASH_REMATCH[2]}")
  image_rate=$(to_bytes "${BASH_REMATCH[3]}") read_rate=$(to_bytes "${BASH_REMATCH[4]}")
  ((image == 1024 * MIB)) || fail "summary image size $image, expected 1 GiB: $line"
  ((read * 100 < image)) || fail "read $read bytes of a 1 GiB mostly-empty qcow2: not the sparse case this test needs"
  ((image_rate >= read_rate)) || fail "image rate $image_rate below the read rate $read_rate: $line"
  # image_rate / read_rate == image / read, within the one-decimal rounding of all four numbers
  local lhs=$((image_rate / 1024 * (read / 1024))) rhs=$((image / 1024 * (read_rate / 1024)))
  ((lhs * 10 >= rhs * 9 && lhs * 9 <= rhs * 10)) \
    || fail "headline rate is not image bytes per second: image $image read $read, rates $image_rate / $read_rate"
}

t_progress_json() {
  run_import --url "$IMG/raw.gz" --dest "$W/dest/disk.raw" --progress json
  # every line but the final summary is one JSON object with the documented keys
  local json
  json=$(grep '^{' "$W/_meta/err" || true)
  [[ -n $json ]] || { show_output; fail "no JSON progress lines"; }
  local n_err
  n_err=$(grep -vc '^{' "$W/_meta/err" || true)
  ((n_err <= 1)) || { show_output; fail "more than the summary line besides JSON"; }
  echo "$json" | jq -e -s 'length >= 1 and all(.[]; has("phase") and has("bytes_read") and has("bytes_written")
      and has("total") and has("rate") and (.bytes_read | type == "number")
      and (.bytes_written | type == "number") and (.total == null or (.total | type == "number")))' > /dev/null \
    || { show_output; fail "JSON progress lines lack phase/bytes_read/bytes_written/total/rate"; }
  # counters only grow, and the final object has read the whole source file
  echo "$json" | jq -e -s '[.[].bytes_read] as $r | [range(1; $r | length) | $r[.] >= $r[. - 1]] | all' > /dev/null \
    || { show_output; fail "bytes_read decreased"; }
  echo "$json" | tail -n 1 | jq -e --argjson n "$(stat -c %s "$IMG/raw.gz")" '.bytes_read == $n and .bytes_written > 0' \
    > /dev/null || { show_output; fail "the final progress object does not account for the whole source"; }
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}

t_progress_bar_not_a_tty() {
  run_import --url "$IMG/qcow2.gz" --dest "$W/dest/disk.raw" --progress bar
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
  run_import --url "$IMG/qcow2.gz" --dest "$W/dest/disk2.raw" -v
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk2.raw"
}

t_info_json() {
  cdi info "$IMG/qcow2.xz" --json
  check_success
  jq -e . "$W/_meta/out" > /dev/null || { show_output; fail "info --json is not JSON"; }
  json_number_anywhere "$W/_meta/out" "$SOURCE_SIZE" || { show_output; fail "info --json lacks the virtual size"; }
  # whether scratch space would be needed: no for a streamable qcow2, yes for a compressed vmdk
  jq -e '[.. | objects | to_entries[] | select(.key | test("scratch"; "i")) | .value] | any(. == true) | not' \
    "$W/_meta/out" > /dev/null || { show_output; fail "info says qcow2.xz needs scratch"; }
  cdi info "$IMG/stream.vmdk.gz" --json
  check_success
  jq -e '[.. | objects | to_entries[] | select(.key | test("scratch"; "i")) | .value] | any(. == true)' \
    "$W/_meta/out" > /dev/null || { show_output; fail "info does not say stream.vmdk.gz needs scratch"; }
  assert_wrote_nothing
}

# slow_feed FIFO FILE BYTES: writes the first BYTES of FILE into FIFO, then keeps it open (stalls).
slow_feed() {
  # (exec: the background job's pid becomes sleep's, so that cleanup can kill it)
  ( head -c "$3" "$2"; exec sleep 60 ) > "$1" 2> /dev/null &
  register_pid $!
}

# cancel_during_import SIGNAL FILE PREFIX_BYTES [ARGS...]
cancel_during_import() {
  local sig=$1 file=$2 bytes=$3
  shift 3
  local fifo=$W/_meta/feed
  mkfifo "$fifo"
  slow_feed "$fifo" "$file" "$bytes"
  snapshot
  # (no timeout wrapper: the signal must reach cdi-import itself; the feeder ends in 60 s anyway.
  # bash starts background jobs with SIGINT ignored: env restores the default disposition)
  env --default-signal=INT,TERM "$CDI" --url - --dest "$W/dest/disk.raw" "$@" < "$fifo" > "$W/_meta/out" 2> "$W/_meta/err" &
  local pid=$!
  register_pid "$pid"
  sleep 1.5
  # still running: waiting for more input
  kill -0 "$pid" 2>/dev/null || { show_output; fail "cdi-import ended before the signal"; }
  kill -"$sig" "$pid"
  # cancellation is prompt, even while blocked reading the input
  local waited=0
  while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    show_output
    fail "cdi-import still running 10 s after SIG$sig"
  fi
  set +e
  wait "$pid"
  LAST_RC=$?
  set -e
  echo "cdi-import after SIG$sig -> exit $LAST_RC" >&2
  ((LAST_RC == 130)) || { show_output; fail "exit $LAST_RC after SIG$sig, expected 130"; }
  grep -q "^$ERR_PREFIX" "$W/_meta/err" || { show_output; fail "no error line after SIG$sig"; }
  assert_failed_cleanly "$W/dest/disk.raw"
}

t_sigterm_streaming_raw() {
  cancel_during_import TERM "$IMG/raw.gz" $((2 * MIB)) --scratch-dir "$W/scratch"
}

t_sigint_streaming_qcow2() {
  cancel_during_import INT "$IMG/qcow2.gz" $((2 * MIB)) --scratch-dir "$W/scratch"
}

t_sigterm_while_spooling_to_scratch() {
  # a stream-optimized vmdk from stdin is spooled into scratch: the spool file must go
  cancel_during_import TERM "$IMG/stream.vmdk" $((2 * MIB)) --scratch-dir "$W/scratch"
}

t_info_plan() {
  # info prints the plan an import with the same options executes (lib/pipeline/plan.hpp)
  mkdir -p "$W/scratch"
  cdi info "$IMG/stream.vmdk.gz"
  check_success
  grep -q '^plan:$' "$W/_meta/out" || { show_output; fail "info prints no plan"; }
  grep -q '^  converter: qemu-img from a scratch spool$' "$W/_meta/out" || { show_output; fail "info: no spool in the plan"; }
  grep -q '^  why: vmdk from a stream needs random access and no scratch is offered' "$W/_meta/out" \
    || { show_output; fail "info: the plan does not say why scratch is needed"; }
  assert_wrote_nothing
  cdi info "$IMG/stream.vmdk.gz" --scratch-dir "$W/scratch" --json
  check_success
  jq -e '.plan.converter == "qemu-img" and .plan.access == "random access on a scratch spool" and .plan.needs.scratch == true
         and (.plan.reasons | any(test("spooled to scratch")))' "$W/_meta/out" > /dev/null \
    || { show_output; fail "info --json: not the spool plan"; }
  # the import executes that plan and logs its reasons
  run_import --url "$IMG/stream.vmdk.gz" --dest "$W/dest/plan.raw" --scratch-dir "$W/scratch" -v
  grep -q 'plan: vmdk from a stream needs random access: the stream is spooled to scratch, then converted' "$W/_meta/err" \
    || { show_output; fail "the import did not log the plan info printed"; }
}

# --memory-limit: the budget's shares are logged and in the plan; a budget below the fixed
# minimums, and a decompressor that cannot fit, fail up front (exit 6) with nothing written
t_memory_limit() {
  run_import -v --progress none --memory-limit 64Mi --url "$IMG/raw.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  grep -q "memory: 44.0 MiB usable of a 64.0 MiB limit (--memory-limit), 20.0 MiB kept back; decompression 8.4 MiB, qcow2 hold 8.4 MiB, write-back window 5.5 MiB, source page cache 5.5 MiB, receive buffer 2.8 MiB, sink queue 4.0 MiB" "$W/_meta/err" ||
    { show_output; fail "the budget's shares are not logged"; }
  grep -q "plan: memory budget: 44.0 MiB usable" "$W/_meta/err" || { show_output; fail "the budget is not in the plan"; }
  rm -f "$W/dest/disk.raw"
  expect_exit 6 --progress none --memory-limit 20Mi --url "$IMG/raw.xz" --dest "$W/dest/disk.raw"
  assert_error_matches "memory budget: copy and sink buffers needs at least 4.0 MiB"
  assert_wrote_nothing "$W/dest"
  # 33 MiB: the fixed shares fit, 172 KiB are left for decompression; raw.xz (xz -0, a 256 KiB
  # dictionary) needs more than that
  expect_exit 6 --progress none --memory-limit 33Mi --url "$IMG/raw.xz" --dest "$W/dest/disk.raw"
  assert_error_matches "xz: decoding needs more memory than the 172.0 KiB limit even single-threaded"
  assert_failed_cleanly "$W/dest/disk.raw"
  expect_exit 2 --progress none --memory-limit lots --url "$IMG/raw.xz" --dest "$W/dest/disk.raw"
  # 0: no limit, whatever the cgroup says
  run_import -v --progress none --memory-limit 0 --url "$IMG/raw.xz" --dest "$W/dest/disk.raw"
  ! grep -q "memory:" "$W/_meta/err" || { show_output; fail "--memory-limit 0 still budgeted"; }
}
run_test help_and_version t_help_and_version
run_test usage_errors t_usage_errors
run_test missing_source t_missing_source
run_test dest_directory_missing t_dest_directory_missing
run_test explicit_import_subcommand t_explicit_import_subcommand
run_test summary_line t_summary_line
run_test summary_rate_is_image_rate t_summary_rate_is_image_rate
run_test progress_json t_progress_json
run_test progress_bar_not_a_tty t_progress_bar_not_a_tty
run_test info_json t_info_json
run_test info_plan t_info_plan
run_test sigterm_streaming_raw t_sigterm_streaming_raw
run_test sigint_streaming_qcow2 t_sigint_streaming_qcow2
run_test sigterm_while_spooling_to_scratch t_sigterm_while_spooling_to_scratch
run_test memory_limit t_memory_limit
finish
