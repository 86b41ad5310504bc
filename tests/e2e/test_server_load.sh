#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The upload server under connection load and in CDI's deployment shapes: 200 idle / byte-a-second
# connections (plain; TLS also stalled mid-handshake) must not delay /healthz past 1 s nor stop an
# upload; [::1]; every CDI TLS profile's TLS_CIPHERS / TLS_MIN_VERSION; a restart on the same port
# while TIME_WAIT sockets remain. Slow connections come from tests/support/slow_clients.py. All on
# 127.0.0.1 / ::1.
source "$(dirname "$0")/lib.sh"
SLOW="/usr/bin/python3 $(cd "$E2E_DIR/../support" && pwd)/slow_clients.py"

CERTS=$T/certs
mkdir -p "$CERTS"
# RSA (the ECDHE-RSA-* names of the profiles must be usable) with SANs for localhost and ::1.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$CERTS/server.key" -out "$CERTS/server.crt" -days 30 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" 2>/dev/null ||
  { echo "making certificates failed" >&2; exit 1; }

# CDI's TLS profiles exactly as the controller joins them into TLS_CIPHERS (TLSProfiles in
# containerized-data-importer-api core/v1beta1/types_tlssecurityprofile.go, joined with "," in
# pkg/controller/upload-controller.go) and their TLS_MIN_VERSION.
OLD="TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,ECDHE-ECDSA-AES128-GCM-SHA256,ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-AES256-GCM-SHA384,ECDHE-RSA-AES256-GCM-SHA384,ECDHE-ECDSA-CHACHA20-POLY1305,ECDHE-RSA-CHACHA20-POLY1305,DHE-RSA-AES128-GCM-SHA256,DHE-RSA-AES256-GCM-SHA384,DHE-RSA-CHACHA20-POLY1305,ECDHE-ECDSA-AES128-SHA256,ECDHE-RSA-AES128-SHA256,ECDHE-ECDSA-AES128-SHA,ECDHE-RSA-AES128-SHA,ECDHE-ECDSA-AES256-SHA384,ECDHE-RSA-AES256-SHA384,ECDHE-ECDSA-AES256-SHA,ECDHE-RSA-AES256-SHA,DHE-RSA-AES128-SHA256,DHE-RSA-AES256-SHA256,AES128-GCM-SHA256,AES256-GCM-SHA384,AES128-SHA256,AES256-SHA256,AES128-SHA,AES256-SHA,DES-CBC3-SHA"
INTERMEDIATE="TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,ECDHE-ECDSA-AES128-GCM-SHA256,ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-AES256-GCM-SHA384,ECDHE-RSA-AES256-GCM-SHA384,ECDHE-ECDSA-CHACHA20-POLY1305,ECDHE-RSA-CHACHA20-POLY1305,DHE-RSA-AES128-GCM-SHA256,DHE-RSA-AES256-GCM-SHA384"
MODERN="TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256"
CUSTOM="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,no-such-cipher,TLS_FAKE_WITH_NOTHING"

# srv_start HOST ARGS...: upload server on HOST:0 (or HOST:PORT given as LISTEN_PORT) into $W/disk.raw.
srv_start() {
  local host=$1
  shift
  : > "$W/_meta/srv.err"
  timeout -k 5 "$CMD_TIMEOUT" "$CDI" upload-server --listen "$host:${LISTEN_PORT:-0}" --dest "$W/disk.raw" -v "$@" \
    > "$W/_meta/srv.out" 2> "$W/_meta/srv.err" &
  SRV_PID=$!
  register_pid "$SRV_PID"
  wait_server_port "$W/_meta/srv.err" "$SRV_PID"
}

# healthz_fast URL CURL_ARGS...: /healthz answers OK within 1 s (and prints the time).
healthz_fast() {
  local url=$1
  shift
  local out
  out=$(curl -sS -m 1 -w ' %{time_total}' "$@" "$url/healthz") || fail "/healthz did not answer within 1 s"
  [[ $out == OK\ * ]] || fail "/healthz answered '$out'"
  echo "healthz in ${out#OK }s" >&2
}

upload_ok() {
  local url=$1
  shift
  head -c $((4 * MIB)) /dev/urandom > "$W/_meta/src.raw"
  local code
  code=$(curl -sS -m 30 -o /dev/null -w '%{http_code}' "$@" --data-binary @"$W/_meta/src.raw" "$url/v1beta1/upload") ||
    fail "upload failed"
  [[ $code == 200 ]] || fail "upload answered $code"
  wait "$SRV_PID" || fail "server exit $? after the upload"
  cmp "$W/_meta/src.raw" "$W/disk.raw" || fail "uploaded bytes differ"
}

# load_then_upload TRANSPORT MODES...: 200 slow connections held, then healthz + upload.
load_then_upload() {
  local transport=$1
  shift
  local curl_tls=() url=http://127.0.0.1
  if [[ $transport == https ]]; then
    srv_start 127.0.0.1 --tls-cert "$CERTS/server.crt" --tls-key "$CERTS/server.key"
    curl_tls=(--cacert "$CERTS/server.crt")
    url=https://localhost
  else
    srv_start 127.0.0.1 --insecure-http
  fi
  url=$url:$PORT
  $SLOW 127.0.0.1 "$PORT" 25 "$@" > "$W/_meta/slow.out" 2>&1 &
  local slow=$!
  register_pid "$slow"
  for _ in $(seq 300); do
    grep -q '^ready' "$W/_meta/slow.out" && break
    kill -0 "$slow" 2>/dev/null || break
    sleep 0.1
  done
  grep -q '^ready 200$' "$W/_meta/slow.out" || { cat "$W/_meta/slow.out" >&2; fail "slow clients did not open 200 connections"; }
  sleep 1
  for _ in 1 2 3; do healthz_fast "$url" "${curl_tls[@]}"; done
  upload_ok "$url" "${curl_tls[@]}"
  kill "$slow" 2>/dev/null || true
}

t_plain_200_slow_connections() { load_then_upload http idle=100 trickle=100; }
t_tls_200_slow_connections() { load_then_upload https tls-stall=70 tls-idle=70 tls-trickle=60; }

# A byte-a-second header is cut at the 10 s header deadline (not per byte), so are idle and
# mid-handshake connections.
t_slow_connections_are_cut_at_10s() {
  srv_start 127.0.0.1 --tls-cert "$CERTS/server.crt" --tls-key "$CERTS/server.key"
  timeout 30 $SLOW 127.0.0.1 "$PORT" 14 tls-stall=3 tls-idle=3 tls-trickle=3 > "$W/_meta/slow.out" 2>&1
  cat "$W/_meta/slow.out" >&2
  grep -q '^closed-by-server 9$' "$W/_meta/slow.out" || fail "not every slow connection was cut within 14 s"
}

t_ipv6_loopback() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null ||
    fail "this machine has no IPv6 loopback (test the 0.0.0.0 fallback instead)"
  srv_start '[::1]' --insecure-http
  healthz_fast "http://[::1]:$PORT"
  grep -q 'listening on \[::1\]' "$W/_meta/srv.err" || fail "log does not name [::1]"
  upload_ok "http://[::1]:$PORT"
}

# The wildcard is dual-stack: one server answers on 127.0.0.1 and on ::1.
t_wildcard_is_dual_stack() {
  srv_start 0.0.0.0 --insecure-http
  grep -q 'listening on \[::\]' "$W/_meta/srv.err" || fail "0.0.0.0 did not bind [::]"
  healthz_fast "http://[::1]:$PORT"
  healthz_fast "http://127.0.0.1:$PORT"
  kill "$SRV_PID"
}

# profile NAME CIPHERS MIN_VERSION: the server starts, TLS clients connect.
profile() {
  srv_start 127.0.0.1 --tls-cert "$CERTS/server.crt" --tls-key "$CERTS/server.key" --tls-ciphers "$2" --tls-min-version "$3"
  healthz_fast "https://localhost:$PORT" --cacert "$CERTS/server.crt"
}

t_profile_old() {
  profile old "$OLD" VersionTLS10
  healthz_fast "https://localhost:$PORT" --cacert "$CERTS/server.crt" --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES128-SHA
  grep -q "unknown cipher 'DES-CBC3-SHA' skipped" "$W/_meta/srv.err" || fail "no warning for DES-CBC3-SHA"
  kill "$SRV_PID"
}
t_profile_intermediate() {
  profile intermediate "$INTERMEDIATE" VersionTLS12
  healthz_fast "https://localhost:$PORT" --cacert "$CERTS/server.crt" --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES256-GCM-SHA384
  # A TLS 1.2 cipher outside the profile is refused.
  curl -sS -m 2 --cacert "$CERTS/server.crt" --tls-max 1.2 --ciphers AES128-SHA "https://localhost:$PORT/healthz" &&
    fail "AES128-SHA accepted outside the Intermediate profile"
  grep -q 'warning' "$W/_meta/srv.err" && fail "warnings for a valid profile"
  kill "$SRV_PID"
}
t_profile_modern_tls13_only() {
  profile modern "$MODERN" VersionTLS13
  healthz_fast "https://localhost:$PORT" --cacert "$CERTS/server.crt" --tlsv1.3
  echo | openssl s_client -connect "127.0.0.1:$PORT" -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 2>&1 |
    grep -q 'TLSv1.3' || fail "TLS 1.3 ChaCha20 handshake failed"
  curl -sS -m 2 --cacert "$CERTS/server.crt" --tls-max 1.2 "https://localhost:$PORT/healthz" &&
    fail "TLS 1.2 accepted with the Modern profile"
  kill "$SRV_PID"
}
t_profile_custom_with_junk() {
  profile custom "$CUSTOM" VersionTLS12
  healthz_fast "https://localhost:$PORT" --cacert "$CERTS/server.crt" --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256
  grep -q "cdi-import: warning: TLS_CIPHERS: unknown cipher 'no-such-cipher' skipped" "$W/_meta/srv.err" || fail "no warning for junk"
  kill "$SRV_PID"
}
t_profile_only_junk_falls_back() {
  profile junk "junk1,junk2" ""
  grep -q "using the OpenSSL defaults" "$W/_meta/srv.err" || fail "no fallback warning"
  kill "$SRV_PID"
}

# The previous server's closed connections stay in TIME_WAIT on the port; a new one binds anyway.
t_restart_same_port_time_wait() {
  srv_start 127.0.0.1 --insecure-http
  local port=$PORT
  healthz_fast "http://127.0.0.1:$port"
  # Idle keep-alive connections the stopping server closes first: TIME_WAIT on its side.
  $SLOW 127.0.0.1 "$port" 3 idle=3 > "$W/_meta/slow.out" 2>&1 &
  register_pid $!
  for _ in $(seq 50); do grep -q '^ready' "$W/_meta/slow.out" && break; sleep 0.1; done
  upload_ok "http://127.0.0.1:$port"
  for _ in $(seq 40); do
    ss -Htan state time-wait "( sport = :$port )" | grep -q . && break
    sleep 0.1
  done
  ss -Htan state time-wait "( sport = :$port )" | grep -q . || fail "no TIME_WAIT socket on :$port (test is moot)"
  # Control: without SO_REUSEADDR the port cannot be bound now.
  python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null &&
    fail "a plain bind succeeded: no TIME_WAIT conflict to prove anything"
  LISTEN_PORT=$port srv_start 127.0.0.1 --insecure-http
  [[ $PORT == "$port" ]] || fail "restarted on $PORT, not $port"
  healthz_fast "http://127.0.0.1:$port"
  kill "$SRV_PID"
}

run_test plain_200_slow_connections t_plain_200_slow_connections
run_test tls_200_slow_connections t_tls_200_slow_connections
run_test slow_connections_are_cut_at_10s t_slow_connections_are_cut_at_10s
run_test ipv6_loopback t_ipv6_loopback
run_test wildcard_is_dual_stack t_wildcard_is_dual_stack
run_test profile_old t_profile_old
run_test profile_intermediate t_profile_intermediate
run_test profile_modern_tls13_only t_profile_modern_tls13_only
run_test profile_custom_with_junk t_profile_custom_with_junk
run_test profile_only_junk_falls_back t_profile_only_junk_falls_back
run_test restart_same_port_time_wait t_restart_same_port_time_wait
finish
