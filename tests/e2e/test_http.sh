#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# HTTP(S) sources against a real nginx started here on 127.0.0.1 (HTTP, HTTPS with a private CA,
# basic auth, redirects, statuses) and the project's fault server (resets, truncation, stalls,
# flaky 503, chunked bodies, no Range support). Every seed-matrix cell is compared with what
# qemu-img makes of the source, with a scratch tmpfs that must stay at zero bytes during the run.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/../support/nginx.sh"

SRV=$T/srv
mkdir -p "$SRV"
trap 'nginx_stop; fault_stop; proxy_stop; rm -rf "$IMG/_ranges.$$"; cleanup' EXIT
nginx_start "$SRV/nginx" "$IMG" || { echo "nginx did not start" >&2; exit 1; }
fault_start "$SRV" "$IMG" || { echo "fault server did not start" >&2; exit 1; }
ACCESS=$SRV/nginx/access.log
H=http://127.0.0.1:$HTTP_PORT
S=https://127.0.0.1:$HTTPS_PORT
F=http://127.0.0.1:$FAULT_PORT
# fast, bounded retries for the fault tests (the defaults are minutes)
FAST=(--retries 3 --retry-max-time 20)

password_file() { printf '%s\n' "$HTPASS" > "$W/_meta/pw"; echo "$W/_meta/pw"; }


# --- the seed matrix: HTTP, HTTPS (private CA in --cert-dir), basic auth -----------------------

# cell COLUMN IMAGE REFERENCE [QEMU_FORMAT]
cell() {
  local col=$1 image=$2 ref=$3 fmt=${4:-}
  local args=()
  case $col in
    http) args=(--url "$H/$image") ;;
    https) args=(--url "$S/$image" --cert-dir "$CA_DIR") ;;
    auth) args=(--url "$H/auth/$image" --username "$HTUSER" --password-file "$(password_file)") ;;
    https-auth) args=(--url "https://localhost:$HTTPS_PORT/auth/$image" --cert-dir "$CA_DIR"
                      --username "$HTUSER" --password-file "$(password_file)") ;;
  esac
  if [[ $image == archive.tar ]]; then
    mkdir -p "$W/_meta/expected"
    tar -C "$W/_meta/expected" -xf "$IMG/archive.tar"
    cdi_watch_scratch --progress none --content-type archive "${args[@]}" --dest "$W/dest/tree"
    check_success
    diff -r --no-dereference "$W/_meta/expected" "$W/dest/tree" >&2 || fail "extracted tree differs from tar -x"
    return 0
  fi
  cdi_watch_scratch --progress none "${args[@]}" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$IMG/$ref" "$W/dest/disk.raw" "$fmt"
  [[ $(ls -A "$W/dest") == disk.raw ]] || fail "unexpected files in dest: $(ls -A "$W/dest")"
}

for col in http https auth https-auth; do
  run_test "${col}_qcow2" cell $col qcow2-v3.qcow2 qcow2-v3.qcow2
  run_test "${col}_qcow2_gz" cell $col qcow2.gz qcow2-v3.qcow2
  run_test "${col}_qcow2_xz" cell $col qcow2.xz qcow2-v3.qcow2
  run_test "${col}_raw" cell $col source.raw source.raw raw
  run_test "${col}_raw_gz" cell $col raw.gz source.raw raw
  run_test "${col}_raw_xz" cell $col raw.xz source.raw raw
  run_test "${col}_raw_zst" cell $col raw.zst source.raw raw
  run_test "${col}_archive_tar" cell $col archive.tar -
done

# --- TLS ---------------------------------------------------------------------------------------

t_https_untrusted_refused() {
  expect_exit 8 --progress none --url "$S/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "TLS: .*certificate.*--cert-dir"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_https_other_ca_refused() {
  mkdir -p "$W/_meta/other"
  cp "$SRV/nginx/certs/other-ca.crt" "$W/_meta/other/ca.pem"
  expect_exit 8 --progress none --cert-dir "$W/_meta/other" --url "$S/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "TLS: "
}
t_https_insecure_accepted() {
  run_import -v --progress none --insecure-tls --url "$S/raw.gz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  grep -q "verification is DISABLED" "$W/_meta/err" || fail "--insecure-tls not logged"
}
t_cert_dir_warns_about_non_certificates() {
  run_import -v --progress none --cert-dir "$CA_DIR" --url "$S/raw.gz" --dest "$W/dest/disk.raw"
  grep -q "README holds no PEM certificate" "$W/_meta/err" || fail "no warning about README"
  ! grep -q "hidden" "$W/_meta/err" || fail "a dot file was read"
  grep -q "trusting 1 certificate" "$W/_meta/err" || fail "the odd-named CA file was not trusted"
}
t_cert_dir_missing() {
  expect_exit 9 --progress none --cert-dir "$W/_meta/nope" --url "$S/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "cert-dir"
}
run_test https_untrusted_refused t_https_untrusted_refused
run_test https_other_ca_refused t_https_other_ca_refused
run_test https_insecure_accepted t_https_insecure_accepted
run_test cert_dir_warns_about_non_certificates t_cert_dir_warns_about_non_certificates
run_test cert_dir_missing t_cert_dir_missing

# --- basic auth, credentials and headers -------------------------------------------------------

t_auth_wrong_password() {
  echo "wrong" > "$W/_meta/bad"
  expect_exit 7 --progress none --url "$H/auth/raw.gz" --username "$HTUSER" --password-file "$W/_meta/bad" --dest "$W/dest/disk.raw"
  assert_error_matches "^cdi-import: error: .*HTTP 401 Unauthorized for http://127.0.0.1:$HTTP_PORT/auth/raw.gz"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_auth_missing() {
  expect_exit 7 --progress none --url "$H/auth/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "HTTP 401 Unauthorized.*no credentials given"
}
t_password_never_logged() {
  run_import -v --progress json --url "$H/auth/raw.gz" --username "$HTUSER" --password-file "$(password_file)" --dest "$W/dest/disk.raw"
  ! grep -qF "$HTPASS" "$W/_meta/err" "$W/_meta/out" || fail "the password appears in the output"
}
# 127.0.0.1 and localhost are different hosts: after the redirect, no Authorization, no header file.
t_cross_host_redirect_drops_credentials() {
  printf 'X-Secret: tok-123\n' > "$W/_meta/secret-header"
  : > "$ACCESS"
  run_import -v --progress none --url "$H/cross-host/raw.gz" --username "$HTUSER" --password-file "$(password_file)" \
    --header "X-Test: visible" --header-file "$W/_meta/secret-header" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  cat "$ACCESS" >&2
  grep -q "\"GET /cross-host/raw.gz .* 302 .*host=\"127.0.0.1:$HTTP_PORT\".*auth=\"Basic " "$ACCESS" || fail "credentials not sent to the origin"
  grep -q "xsecret=\"tok-123\"" "$ACCESS" || fail "secret header not sent to the origin"
  local after
  after=$(grep "host=\"localhost:$HTTP_PORT\"" "$ACCESS")
  [[ -n $after ]] || fail "no request reached localhost"
  grep -q 'auth="-"' <<< "$after" || fail "Authorization sent after a cross-host redirect"
  grep -q 'user="-"' <<< "$after" || fail "user sent after a cross-host redirect"
  grep -q 'xsecret="-"' <<< "$after" || fail "header-file header sent after a cross-host redirect"
  grep -q 'xtest="visible"' <<< "$after" || fail "a plain --header should follow the redirect"
}
t_cross_scheme_redirect_drops_credentials() {
  # http -> https on another port: another origin, so the auth-protected target answers 401
  expect_exit 7 --progress none --cert-dir "$CA_DIR" --url "$H/cross-port-auth/raw.gz" --username "$HTUSER" \
    --password-file "$(password_file)" --dest "$W/dest/disk.raw"
  assert_error_matches "HTTP 401"
}
t_same_origin_redirect_keeps_credentials() {
  run_import --progress none --url "$H/redirect-auth/raw.gz" --username "$HTUSER" --password-file "$(password_file)" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}
t_headers_reach_the_server() {
  printf 'X-Secret: tok-123\n' > "$W/_meta/secret-header"
  : > "$ACCESS"
  run_import --progress none --url "$H/need-header/raw.gz" --header "X-Test: hello there" \
    --header-file "$W/_meta/secret-header" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  grep -q 'xtest="hello there" xsecret="tok-123"' "$ACCESS" || fail "headers did not reach nginx"
  grep -q 'ua="cdi-import/' "$ACCESS" || fail "User-Agent is not cdi-import/<version>"
}
t_header_required() {
  expect_exit 7 --progress none --url "$H/need-header/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "HTTP 403 Forbidden"
}
t_bad_header_refused() {
  expect_exit 2 --progress none --url "$H/raw.gz" --header "no colon here" --dest "$W/dest/disk.raw"
  assert_error_matches "--header"
}
run_test auth_wrong_password t_auth_wrong_password
run_test auth_missing t_auth_missing
run_test password_never_logged t_password_never_logged
run_test cross_host_redirect_drops_credentials t_cross_host_redirect_drops_credentials
run_test cross_scheme_redirect_drops_credentials t_cross_scheme_redirect_drops_credentials
run_test same_origin_redirect_keeps_credentials t_same_origin_redirect_keeps_credentials
run_test headers_reach_the_server t_headers_reach_the_server
run_test header_required t_header_required
run_test bad_header_refused t_bad_header_refused

# --- redirects and statuses --------------------------------------------------------------------

t_redirect_302() {
  run_import --progress none --url "$H/redirect/qcow2.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
}
t_redirect_301() {
  run_import --progress none --url "$H/moved/raw.zst" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}
t_redirect_loop() {
  expect_exit 8 --progress none --url "$H/loop-a" --dest "$W/dest/disk.raw"
  assert_error_matches "redirect loop: .*/loop-a -> .*/loop-b -> .*/loop-a"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_https_to_http_refused() {
  expect_exit 8 --progress none --cert-dir "$CA_DIR" --url "$S/downgrade/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "refusing a redirect from https to plain http"
}
t_status() {   # t_status CODE EXIT REGEX
  expect_exit "$2" --progress none "${FAST[@]}" --url "$H/status/$1" --dest "$W/dest/disk.raw"
  assert_error_matches "$3"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_503_retry_after_honoured() {
  local t0=$EPOCHREALTIME
  expect_exit 8 --progress none --retries 2 --url "$H/status/503" --dest "$W/dest/disk.raw"
  local ms=$(( (${EPOCHREALTIME/./} - ${t0/./}) / 1000 ))
  assert_error_matches "HTTP 503 Service Unavailable .*gave up after 3 attempts"
  ((ms >= 1900)) || fail "Retry-After: 1 not honoured (took $ms ms for 3 attempts)"
}
t_503_then_200() {
  run_import -v --progress none "${FAST[@]}" --url "$F/flaky/1/raw.gz?n=2" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  [[ $(grep -c "HTTP 503" "$W/_meta/err") == 2 ]] || fail "expected two 503 retries"
}
t_html_error_page() {
  expect_exit 4 --progress none --url "$F/html" --dest "$W/dest/disk.raw"
  assert_error_matches "server returned an HTML page \(likely an error page\)"
  assert_failed_cleanly "$W/dest/disk.raw"
}
run_test redirect_302 t_redirect_302
run_test redirect_301 t_redirect_301
run_test redirect_loop t_redirect_loop
run_test https_to_http_refused t_https_to_http_refused
run_test status_404 t_status 404 9 "^cdi-import: error: .*HTTP 404 Not Found for http://127.0.0.1:$HTTP_PORT/status/404\$"
run_test status_410 t_status 410 9 "HTTP 410 Gone"
run_test status_403 t_status 403 7 "HTTP 403 Forbidden"
run_test status_400 t_status 400 8 "HTTP 400 Bad Request"
run_test status_500 t_status 500 8 "HTTP 500 Internal Server Error .*gave up"
run_test status_503_retry_after t_503_retry_after_honoured
run_test status_503_then_200 t_503_then_200
run_test html_error_page t_html_error_page

# --- faults: resume or fail clearly, never a short image ---------------------------------------

# resumed MODE_PATH IMAGE REF [FMT]: completes with the right bytes, and resumed with Range+If-Range.
resumed() {
  local url="$F/$1/$2?t=$RANDOM$RANDOM"
  run_import -v --progress none "${FAST[@]}" --stall-timeout 2 --url "$url" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/$3" "$W/dest/disk.raw" "${4:-}"
  grep -q "resuming at byte" "$W/_meta/err" || fail "no resume logged"
  grep -q "range=bytes=[1-9][0-9]*- if-range=\"" "$SRV/fault.log" || fail "no Range/If-Range request seen"
}
# a server that never gets further: each attempt ends before the first byte
t_truncated_after_retries() {
  local t0=$EPOCHREALTIME
  expect_exit 8 --progress none --retries 2 --url "$F/truncate/0/raw.gz?n=100&t=$RANDOM" --dest "$W/dest/disk.raw"
  local ms=$(( (${EPOCHREALTIME/./} - ${t0/./}) / 1000 ))
  assert_error_matches "gave up"
  assert_failed_cleanly "$W/dest/disk.raw"
  ((ms < 30000)) || fail "took $ms ms"
}
t_stall_gives_up_in_bounds() {
  local t0=$EPOCHREALTIME
  expect_exit 8 --progress none --retries 1 --stall-timeout 1 --url "$F/stall/0/raw.gz?n=100&t=$RANDOM" --dest "$W/dest/disk.raw"
  local ms=$(( (${EPOCHREALTIME/./} - ${t0/./}) / 1000 ))
  assert_error_matches "no data for 1 s \(stalled\)"
  ((ms < 10000)) || fail "took $ms ms"
}
t_no_range_support_fails_clearly() {
  expect_exit 8 --progress none "${FAST[@]}" --url "$F/norange-reset/2000000/raw.gz?t=$RANDOM" --dest "$W/dest/disk.raw"
  assert_error_matches "does not support Range requests .*cannot resume"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_no_range_before_first_byte_restarts() {
  run_import --progress none "${FAST[@]}" --url "$F/flaky/0/raw.xz?t=$RANDOM" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  run_import --progress none --url "$F/norange/qcow2.gz" --dest "$W/dest/disk2.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk2.raw"
}
t_changed_file_refused() {
  expect_exit 8 --progress none "${FAST[@]}" --url "$F/changed/2000000/raw.gz?t=$RANDOM" --dest "$W/dest/disk.raw"
  assert_error_matches "changed on the server|does not support Range"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_chunked_without_length() {
  run_import --progress none --url "$F/chunked/qcow2.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
}
t_cancel_is_prompt() {
  snapshot
  timeout -k 5 60 "$CDI" --progress none --stall-timeout 60 --url "$F/stall/3000000/raw.gz?n=100&t=$RANDOM" \
    --dest "$W/dest/disk.raw" > "$W/_meta/out" 2> "$W/_meta/err" &
  local pid=$!
  sleep 1
  local t0=$EPOCHREALTIME
  kill -TERM "$(pgrep -P "$pid" -x cdi-import || echo "$pid")"
  local rc=0
  wait "$pid" || rc=$?
  local ms=$(( (${EPOCHREALTIME/./} - ${t0/./}) / 1000 ))
  cat "$W/_meta/err" >&2
  ((rc == 130)) || fail "exit $rc, expected 130"
  ((ms < 2000)) || fail "cancel took $ms ms"
  assert_failed_cleanly "$W/dest/disk.raw"
}
run_test resume_after_reset resumed reset/3000000 raw.gz source.raw raw
run_test resume_after_truncation resumed truncate/2500000 qcow2.xz qcow2-v3.qcow2
run_test resume_after_stall resumed stall/1000000 raw.zst source.raw raw
run_test resume_qcow2_after_reset resumed reset/5000000 qcow2-v3.qcow2 qcow2-v3.qcow2
run_test resume_chunked_cut resumed chunked-cut/1500000 raw.gz source.raw raw
run_test truncated_gives_up_in_bounds t_truncated_after_retries
run_test stall_gives_up_in_bounds t_stall_gives_up_in_bounds
run_test no_range_support_fails_clearly t_no_range_support_fails_clearly
run_test no_range_before_first_byte_restarts t_no_range_before_first_byte_restarts
run_test changed_file_refused t_changed_file_refused
run_test chunked_without_length t_chunked_without_length
run_test cancel_is_prompt t_cancel_is_prompt

# --- qcow2 whose data precede their L2 tables: read by Range requests, nothing held, no scratch ---
# 4 KiB clusters put one L2 table per 2 MiB of guest, written after the first data of its range,
# so one stream would have to hold ~300 KiB; with --qcow2-hold-limit 16Ki (tens of KiB for zstd, more for zlib) the plan reads the
# tables by ranges, then the data in file order (If-Match on the first response's ETag).
RANGES_DIR=$IMG/_ranges.$$
make_late_l2() {   # make_late_l2 ALGO -> $RANGES_DIR/late-ALGO.qcow2 (and late.raw)
  mkdir -p "$RANGES_DIR"
  local src=$RANGES_DIR/late.raw
  if [[ ! -e $src ]]; then
    head -c $((8 * MIB)) /dev/urandom > "$src.tmp"
    { yes 'text of the qcow2 late-L2 range test ' || true; } | head -c $((6 * MIB)) >> "$src.tmp"
    truncate -s $((32 * MIB)) "$src.tmp"
    mv "$src.tmp" "$src"
  fi
  [[ -e $RANGES_DIR/late-$1.qcow2 ]] ||
    qemu-img convert -q -f raw -O qcow2 -c -o cluster_size=4096,compression_type=$1 "$src" "$RANGES_DIR/late-$1.qcow2"
}
t_qcow2_late_l2_by_ranges() {   # t_qcow2_late_l2_by_ranges ALGO
  local algo=$1 img name=late-$1.qcow2 base
  make_late_l2 "$algo"
  img=$RANGES_DIR/$name
  base=$H/_ranges.$$
  # the source of the comparison is the qcow2 itself: assert_same_as_qemu converts it
  cdi info --qcow2-hold-limit 16Ki "$base/$name"
  ((LAST_RC == 0)) || { show_output; fail "info failed"; }
  grep -q "access: random access with HTTP Range requests" "$W/_meta/out" || { show_output; fail "info does not plan ranges"; }
  grep -q "scratch: not needed" "$W/_meta/out" || { show_output; fail "info says scratch is needed"; }
  local why; why=$(info_why "qcow2: its tables were read by HTTP ranges")
  # no scratch offered: no exit 10; peak RSS bounded (the hold limit is 16 KiB, the image 32 MiB)
  : > "$ACCESS"
  cdi_rss -v --progress none --qcow2-hold-limit 16Ki --url "$base/$name" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$img" "$W/dest/disk.raw"
  assert_plan_as_info "$why"
  grep -q "random access by byte ranges to .* pinned by If-Match" "$W/_meta/err" || { show_output; fail "not pinned"; }
  (( $(grep -c "GET /_ranges.$$/$name HTTP/1.1\" 206" "$ACCESS") >= 2 )) || fail "no Range requests in the access log"
  ! grep "imported" "$W/_meta/err" | sed 's/.*(file)://' | grep -qi "held\|spill\|scratch" || { show_output; fail "held or spilled"; }
  assert_rss_under 96
  # scratch offered (its own tmpfs, watched with df): still unused
  rm -f "$W/dest/disk.raw"
  cdi_watch_scratch -v --progress none --qcow2-hold-limit 16Ki --url "$base/$name" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$img" "$W/dest/disk.raw"
  # the same image from a pipe cannot seek: scratch required (exit 10)
  rm -f "$W/dest/disk.raw"
  cdi_stdin "$img" --progress none --qcow2-hold-limit 16Ki --url - --dest "$W/dest/disk.raw"
  ((LAST_RC == 10)) || { show_output; fail "from a pipe: exit $LAST_RC, expected 10"; }
  [[ ! -e $W/dest/disk.raw ]] || fail "a failed import left a target"
}
t_qcow2_ranges_resource_changed() {
  # the first GET gets one ETag, every later request another: the pinned range reads get 412
  make_late_l2 zstd
  expect_exit 4 --progress none "${FAST[@]}" --qcow2-hold-limit 16Ki \
    --url "$F/changed/1000000000/_ranges.$$/late-zstd.qcow2?t=$RANDOM" --dest "$W/dest/disk.raw"
  # (If-Match is only sent by the range reads; a resumed stream sends If-Range)
  assert_error_matches "the resource changed while it was read \\(HTTP 412: If-Match"
  assert_failed_cleanly "$W/dest/disk.raw"
}
# --- the same images where the source can be read again but not seeked: two sequential reads ----
# (nginx's /norange/ ignores Range; xz hides the qcow2 from ranges). The first read keeps only the
# tables, the second writes the data as they pass: no scratch, nothing held, whatever the layout.
# (One stream is tried first and abandoned when its hold would pass the limit: 16 KiB here.)
t_qcow2_two_reads() {   # t_qcow2_two_reads KIND ALGO: KIND norange | xz-http | xz-file
  local kind=$1 algo=$2 img src
  make_late_l2 "$algo"
  img=$RANGES_DIR/late-$algo.qcow2
  [[ -e $img.xz ]] || xz -k -T1 "$img"
  case $kind in
    norange) src=$H/norange/_ranges.$$/late-$algo.qcow2 ;;
    xz-http) src=$H/_ranges.$$/late-$algo.qcow2.xz ;;
    xz-file) src=$img.xz ;;
  esac
  cdi info --qcow2-hold-limit 16Ki "$src"
  ((LAST_RC == 0)) || { show_output; fail "info failed"; }
  grep -q "access: two sequential reads" "$W/_meta/out" || { show_output; fail "info does not plan two reads"; }
  grep -q "a second read of the source" "$W/_meta/out" || { show_output; fail "info does not say the source is read twice"; }
  grep -q "scratch: not needed" "$W/_meta/out" || { show_output; fail "info says scratch is needed"; }
  local why; why=$(info_why "qcow2: the source cannot be seeked")
  grep -q "why: first read: .* L2 tables; one stream would hold" "$W/_meta/out" || { show_output; fail "info did not report its first read"; }
  : > "$ACCESS"
  cdi_rss -v --progress none --qcow2-hold-limit 16Ki --url "$src" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$img" "$W/dest/disk.raw"
  assert_plan_as_info "$why"
  grep -q "qcow2: read the source 2 times" "$W/_meta/err" || { show_output; fail "not read twice"; }
  if [[ $kind != xz-file ]]; then
    # the one stream tried first (abandoned once its hold would pass the limit), then the two reads
    (( $(grep -c "GET /[a-z/]*_ranges.$$/late-$algo.qcow2[.xz]* HTTP/1.1\" 200" "$ACCESS") == 3 )) ||
      { cat "$ACCESS" >&2; fail "expected three GETs in the access log (the abandoned stream, then two reads)"; }
    ! grep -q "\" 206 " "$ACCESS" || fail "Range requests were answered"
  fi
  ! grep "imported" "$W/_meta/err" | sed 's/.*(file)://' | grep -qi "held\|spill\|scratch" || { show_output; fail "held or spilled"; }
  assert_rss_under 96
}
t_qcow2_two_reads_stdin() {
  # a pipe cannot be read again: hold and spill remain (scratch offered: it spills; none: exit 10)
  make_late_l2 zstd
  local img=$RANGES_DIR/late-zstd.qcow2
  [[ -e $img.xz ]] || xz -k -T1 "$img"
  mkdir -p "$W/_meta/scratch"
  cdi_stdin "$img.xz" -v --progress none --qcow2-hold-limit 16Ki --scratch-dir "$W/_meta/scratch" --url - --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$img" "$W/dest/disk.raw"
  grep -q "spilled" "$W/_meta/err" || { show_output; fail "a pipe with scratch did not spill"; }
  ! grep -q "read the source 2 times" "$W/_meta/err" || fail "a pipe was read twice"
  rm -f "$W/dest/disk.raw"
  cdi_stdin "$img.xz" --progress none --qcow2-hold-limit 16Ki --url - --dest "$W/dest/disk.raw"
  ((LAST_RC == 10)) || { show_output; fail "from a pipe: exit $LAST_RC, expected 10"; }
  [[ ! -e $W/dest/disk.raw ]] || fail "a failed import left a target"
}
t_qcow2_two_reads_resource_changed() {
  # the second GET carries If-Match on the first one's ETag; the server's ETag changed: 412
  make_late_l2 zstd
  expect_exit 4 --progress none "${FAST[@]}" --qcow2-hold-limit 16Ki \
    --url "$F/norange-changed/_ranges.$$/late-zstd.qcow2?t=$RANDOM" --dest "$W/dest/disk.raw"
  assert_error_matches "the resource changed between the two reads \\(HTTP 412"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_qcow2_xz_http_fits_one_stream() {
  # the same late-L2 image within the default hold limit: the stream tried first suffices, so it is
  # read once (one GET), and info (which measured it) says so
  make_late_l2 zstd
  local img=$RANGES_DIR/late-zstd.qcow2
  [[ -e $img.xz ]] || xz -k -T1 "$img"
  cdi info "$H/_ranges.$$/late-zstd.qcow2.xz"
  ((LAST_RC == 0)) || { show_output; fail "info failed"; }
  grep -q "access: sequential" "$W/_meta/out" || { show_output; fail "info does not plan one stream"; }
  ! grep -q "a second read of the source" "$W/_meta/out" || { show_output; fail "info plans a second read"; }
  grep -q "within the hold limit: the import reads it once" "$W/_meta/out" || { show_output; fail "info did not report its measurement"; }
  : > "$ACCESS"
  cdi -v --progress none --url "$H/_ranges.$$/late-zstd.qcow2.xz" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$img" "$W/dest/disk.raw"
  grep -q "qcow2: one stream sufficed" "$W/_meta/err" || { show_output; fail "not read by one stream"; }
  (( $(grep -c "GET /_ranges.$$/late-zstd.qcow2.xz HTTP/1.1\" 200" "$ACCESS") == 1 )) ||
    { cat "$ACCESS" >&2; fail "expected one GET in the access log"; }
}
run_test qcow2_xz_http_fits_one_stream t_qcow2_xz_http_fits_one_stream
# A multi-block xz over HTTP with Range: its blocks decoded in parallel, each worker reading by
# ranges pinned to the version the stream saw; without Range (/norange/) or with --checksum (the
# digest needs the stream: not downloaded twice), one stream.
t_xz_blocks_by_ranges() {
  : > "$ACCESS"
  cdi -v --progress none --url "$H/raw.multiblock.xz" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  if (($(nproc) >= 2)); then
    grep -q "plan: xz: 64 blocks in 1 stream(s), decoded in parallel on 2 workers reading it by HTTP ranges" "$W/_meta/err" ||
      { show_output; fail "not decoded by blocks over ranges"; }
    (( $(grep -c "GET /raw.multiblock.xz HTTP/1.1\" 206" "$ACCESS") >= 3 )) || { cat "$ACCESS" >&2; fail "no Range requests"; }
  fi
  rm -f "$W/dest/disk.raw"
  cdi -v --progress none --url "$H/norange/raw.multiblock.xz" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  ! grep -q "decoded in parallel" "$W/_meta/err" || { show_output; fail "decoded by blocks without Range"; }
  rm -f "$W/dest/disk.raw"
  local sum
  sum=$(sha256sum "$IMG/raw.multiblock.xz" | cut -d' ' -f1)
  cdi -v --progress none --checksum "sha256:$sum" --url "$H/raw.multiblock.xz" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  ! grep -q "decoded in parallel" "$W/_meta/err" || { show_output; fail "decoded by blocks with a checksum"; }
}
run_test xz_blocks_by_ranges t_xz_blocks_by_ranges
for algo in zlib zstd; do
  run_test qcow2_${algo}_two_reads_http_norange t_qcow2_two_reads norange $algo
  run_test qcow2_${algo}_two_reads_xz_http t_qcow2_two_reads xz-http $algo
  run_test qcow2_${algo}_two_reads_xz_file t_qcow2_two_reads xz-file $algo
done
run_test qcow2_two_reads_stdin_holds_or_spills t_qcow2_two_reads_stdin
run_test qcow2_two_reads_resource_changed t_qcow2_two_reads_resource_changed
run_test qcow2_zlib_late_l2_by_ranges t_qcow2_late_l2_by_ranges zlib
run_test qcow2_zstd_late_l2_by_ranges t_qcow2_late_l2_by_ranges zstd
run_test qcow2_ranges_resource_changed t_qcow2_ranges_resource_changed

# --- vmdk/vhd/vhdx/vdi: read in place with Range requests (nbdkit-curl), else spooled ----------

t_in_place() {   # t_in_place IMAGE [URL_BASE ARGS...]: no --scratch-dir given, none needed
  local image=$1 base=${2:-$H}
  shift 2 || shift $#
  local shm_before; shm_before=$(ls -A /dev/shm | wc -l)
  run_import --progress none "$@" --url "$base/$image" --dest "$W/dest/disk.raw"
  (( $(ls -A /dev/shm | wc -l) == shm_before )) || fail "something was left in /dev/shm"
  assert_same_as_qemu "$IMG/$image" "$W/dest/disk.raw"
  grep -q "via qemu-img over nbdkit-curl" "$W/_meta/err" || fail "not read in place: $(tail -n 1 "$W/_meta/err")"
  [[ -z $(ls -A /dev/shm | grep -i nbdkit) ]] || fail "nbdkit left its cache in /dev/shm"
  ls -d /tmp/cdi-nbd.* 2>/dev/null && fail "the nbdkit socket directory was left behind"
  return 0
}
t_in_place_https_auth() {
  t_in_place stream.vmdk "https://localhost:$HTTPS_PORT/auth" --cert-dir "$CA_DIR" --username "$HTUSER" --password-file "$(password_file)"
  grep -q "\"GET /auth/stream.vmdk HTTP/1.1\" 206 .*user=\"$HTUSER\"" "$ACCESS" || fail "no authenticated Range requests in the access log"
}
t_in_place_info() {
  cdi info "$H/disk.vhdx"
  check_success
  grep -q "converter: qemu-img over nbdkit-curl" "$W/_meta/out" || fail "info does not say in place"
  grep -q "scratch: not needed" "$W/_meta/out" || fail "info says scratch is needed"
}
t_scratch_dir_spools() {
  # with scratch space offered, one sequential download beats Range reads (bench/http.sh)
  run_import --progress none --scratch-dir "$W/scratch" --url "$H/disk.vhdx" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/disk.vhdx" "$W/dest/disk.raw"
  grep -q "scratch, .*via qemu-img$" "$W/_meta/err" || fail "expected the spool path: $(tail -n 1 "$W/_meta/err")"
  assert_no_scratch_left "$W/scratch"
}
t_no_range_spools() {
  run_import -v --progress none --scratch-dir "$W/scratch" --url "$F/norange/disk.vdi" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/disk.vdi" "$W/dest/disk.raw"
  grep -q "via qemu-img$\|via qemu-img," "$W/_meta/err" || fail "expected the spool path"
  assert_no_scratch_left "$W/scratch"
}
t_no_range_without_scratch() {
  expect_exit 10 --progress none --url "$F/norange/disk.vdi" --dest "$W/dest/disk.raw"
  assert_error_matches "scratch space required: vdi from a stream"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_compressed_vmdk_needs_scratch() {
  expect_exit 10 --progress none --url "$H/stream.vmdk.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "scratch space required: vmdk from a stream \\(http > gzip\\)"
}
t_checksum_vmdk_spools() {
  expect_exit 10 --progress none --checksum "sha256:$(sha256sum < "$IMG/sparse.vmdk" | cut -d' ' -f1)" \
    --url "$H/sparse.vmdk" --dest "$W/dest/disk.raw"
  assert_error_matches "not read in place: --checksum needs the whole stream"
  run_import --progress none --scratch-dir "$W/scratch" --checksum "sha256:$(sha256sum < "$IMG/sparse.vmdk" | cut -d' ' -f1)" \
    --url "$H/sparse.vmdk" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/sparse.vmdk" "$W/dest/disk.raw"
}
t_header_file_spools() {
  printf 'X-Secret: tok-123\n' > "$W/_meta/hdr"
  expect_exit 10 --progress none --header-file "$W/_meta/hdr" --url "$H/need-header/dynamic.vhd" --dest "$W/dest/disk.raw"
  assert_error_matches "header files hold secrets"
}
t_in_place_block_device() {
  require_root
  local dev
  fill_ff "$W/_meta/backing" $((64 * MIB))
  dev=$(make_loop "$W/_meta/backing")
  run_import --progress none --url "$H/disk.vhdx" --dest "$dev"
  grep -q "via qemu-img over nbdkit-curl" "$W/_meta/err" || fail "not read in place"
  qemu-img convert -q -O raw "$IMG/disk.vhdx" "$W/_meta/expected.raw"
  cmp -n "$(stat -c %s "$W/_meta/expected.raw")" "$W/_meta/expected.raw" "$dev" >&2 || fail "$dev differs from qemu-img convert"
}
run_test in_place_vmdk_stream t_in_place stream.vmdk
run_test in_place_vmdk_sparse t_in_place sparse.vmdk
run_test in_place_vhdx t_in_place disk.vhdx
run_test in_place_vhd t_in_place dynamic.vhd
run_test in_place_vdi t_in_place disk.vdi
run_test in_place_https_auth t_in_place_https_auth
run_test in_place_info t_in_place_info
run_test scratch_dir_spools t_scratch_dir_spools
run_test no_range_spools t_no_range_spools
run_test no_range_without_scratch t_no_range_without_scratch
run_test compressed_vmdk_needs_scratch t_compressed_vmdk_needs_scratch
run_test checksum_vmdk_spools t_checksum_vmdk_spools
run_test header_file_spools t_header_file_spools
run_test in_place_block_device t_in_place_block_device

# --- TLS client certificates (nginx with ssl_verify_client on) ----------------------------------

CERTS=$SRV/nginx/certs
M=https://127.0.0.1:$MTLS_PORT
t_client_cert_accepted() {
  run_import --progress none --cert-dir "$CA_DIR" --client-cert "$CERTS/client.crt" --client-key "$CERTS/client.key" \
    --url "$M/qcow2.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
}
t_client_cert_key_in_same_file() {
  run_import --progress none --cert-dir "$CA_DIR" --client-cert "$CERTS/client-combined.pem" \
    --url "$M/raw.gz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}
t_client_cert_missing_refused() {
  # nginx answers 400 over TLS; its words reach the message
  expect_exit 8 --progress none --cert-dir "$CA_DIR" --url "$M/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "HTTP 400 Bad Request for .* \\(server says: 400 No required SSL certificate was sent\\)"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_client_cert_untrusted_refused() {
  expect_exit 8 --progress none --cert-dir "$CA_DIR" --client-cert "$CERTS/rogue-client.crt" \
    --client-key "$CERTS/rogue-client.key" --url "$M/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "server says: 400 The SSL certificate error"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_client_key_unreadable() {
  expect_exit 9 --progress none --cert-dir "$CA_DIR" --client-cert "$CERTS/client.crt" --client-key "$W/_meta/none.key" \
    --url "$M/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "client-key"
}
run_test client_cert_accepted t_client_cert_accepted
run_test client_cert_key_in_same_file t_client_cert_key_in_same_file
run_test client_cert_missing_refused t_client_cert_missing_refused
run_test client_cert_untrusted_refused t_client_cert_untrusted_refused
run_test client_key_unreadable t_client_key_unreadable

# --- proxies from the environment (a real tinyproxy on 127.0.0.1) ------------------------------

proxy_start "$SRV/proxy" || { echo "tinyproxy did not start" >&2; exit 1; }
PLAIN_PROXY_PORT=$PROXY_PORT PLAIN_PROXY_PID=$PROXY_PID
PROXY_PID=
proxy_start "$SRV/proxy-auth" proxyuser 'proxy-pw' || { echo "tinyproxy (auth) did not start" >&2; exit 1; }
AUTH_PROXY_PORT=$PROXY_PORT
trap 'nginx_stop; fault_stop; proxy_stop; rm -rf "$IMG/_ranges.$$"; kill $PLAIN_PROXY_PID 2>/dev/null; cleanup' EXIT
PLOG=$SRV/proxy/proxy.log
proxy_lines() { grep -c "$1" "${2:-$PLOG}" 2>/dev/null || true; }

t_upper_case_http_proxy() {
  local before; before=$(proxy_lines "GET http://127.0.0.1:$HTTP_PORT/raw.xz")
  export HTTP_PROXY=http://127.0.0.1:$PLAIN_PROXY_PORT
  run_import -v --progress none --url "$H/raw.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  (( $(proxy_lines "GET http://127.0.0.1:$HTTP_PORT/raw.xz") > before )) || fail "the request did not go through the proxy"
  grep -q "http requests go through proxy http://127.0.0.1:$PLAIN_PROXY_PORT" "$W/_meta/err" || fail "proxy not logged"
}
t_lower_case_https_proxy_connect() {
  local before; before=$(proxy_lines "CONNECT 127.0.0.1:$HTTPS_PORT")
  export https_proxy=http://127.0.0.1:$PLAIN_PROXY_PORT
  run_import --progress none --cert-dir "$CA_DIR" --url "$S/qcow2.gz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
  (( $(proxy_lines "CONNECT 127.0.0.1:$HTTPS_PORT") > before )) || fail "no CONNECT through the proxy"
}
t_no_proxy_bypasses() {
  local before; before=$(wc -l < "$PLOG")
  export HTTP_PROXY=http://127.0.0.1:$PLAIN_PROXY_PORT NO_PROXY=localhost,127.0.0.1
  run_import --progress none --url "$H/raw.gz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  (( $(wc -l < "$PLOG") == before )) || fail "NO_PROXY was not honoured: $(tail -n 3 "$PLOG")"
}
t_proxy_credentials() {
  export HTTP_PROXY=http://proxyuser:proxy-pw@127.0.0.1:$AUTH_PROXY_PORT
  run_import -v --progress none --url "$H/raw.zst" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  ! grep -q "proxy-pw" "$W/_meta/err" || fail "the proxy password was logged"
}
t_proxy_wrong_credentials() {
  export HTTP_PROXY=http://proxyuser:wrong@127.0.0.1:$AUTH_PROXY_PORT
  # (tinyproxy 1.11 answers 401 with WWW-Authenticate where RFC 9110 says 407; both are auth errors)
  expect_exit 7 --progress none --url "$H/raw.zst" --dest "$W/dest/disk.raw"
  assert_error_matches "HTTP 40[17] .*through proxy http://127.0.0.1:$AUTH_PROXY_PORT; proxy credentials go in its URL"
  ! grep -q "wrong" "$W/_meta/err" || fail "the proxy password was printed"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_proxy_unreachable() {
  export HTTP_PROXY=http://127.0.0.1:$(_free_port)
  expect_exit 8 --progress none --retries 1 --retry-max-time 5 --url "$H/raw.zst" --dest "$W/dest/disk.raw"
  assert_error_matches "proxy"
  assert_failed_cleanly "$W/dest/disk.raw"
}
run_test upper_case_http_proxy t_upper_case_http_proxy
run_test lower_case_https_proxy_connect t_lower_case_https_proxy_connect
run_test no_proxy_bypasses t_no_proxy_bypasses
run_test proxy_credentials t_proxy_credentials
run_test proxy_wrong_credentials t_proxy_wrong_credentials
run_test proxy_unreachable t_proxy_unreachable
finish
