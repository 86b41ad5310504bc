#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The upload server as the target of a CDI host-assisted clone: POST /v1beta1/upload with
# x-cdi-content-type blockdevice-clone | filesystem-clone and a snappy-framed body, sent by the real
# curl (chunked) over mutual TLS (openssl-made CA, client CN "srcns/srcpvc-tgtns/tgtpvc" as CDI's
# controller names it). The snappy streams come from python3-snappy (tests/support/snappy_interop.py),
# the tars from GNU `tar cv -S` (what CDI's cloner runs). Targets: files, directories and loop
# devices; every result byte-exact, holes kept. Faults: wrong CN, async route, a body cut at a snappy
# chunk boundary and by a short Content-Length, a bad CRC, a source larger than the device. Pod mode
# (cdi-uploadserver) writes CDI's "Clone Complete" termination message.
source "$(dirname "$0")/lib.sh"
SUPPORT=$(cd "$E2E_DIR/../support" && pwd)
CN="srcns/srcpvc-tgtns/tgtpvc"

# --- certificates ------------------------------------------------------------------------------
CERTS=$T/certs
make_certs() {
  cert_ca "$CERTS" ca &&
    cert_leaf "$CERTS" server localhost ca server &&
    cert_leaf "$CERTS" client "$CN" ca client &&
    cert_leaf "$CERTS" wrongcn srcns/other-tgtns/tgtpvc ca client
}
make_certs || { echo "making certificates failed" >&2; exit 1; }

# --- sources -----------------------------------------------------------------------------------
# src.raw: a 16 MiB "device" that starts with a real qcow2 header (must be copied verbatim, never
# converted), 1 MiB of random data at 4 MiB, 512 KiB at 12 MiB, holes elsewhere.
SRC=$T/src
mkdir -p "$SRC/fs/sub"
readonly SRC_SIZE=$((16 * MIB))
qemu-img create -q -f qcow2 "$SRC/hdr.qcow2" 1G
truncate -s "$SRC_SIZE" "$SRC/src.raw"
dd if="$SRC/hdr.qcow2" of="$SRC/src.raw" bs=64K count=1 conv=notrunc status=none
head -c "$MIB" /dev/urandom | dd of="$SRC/src.raw" bs=1M seek=4 conv=notrunc status=none
head -c $((512 * 1024)) /dev/urandom | dd of="$SRC/src.raw" bs=512K seek=24 conv=notrunc status=none
/usr/bin/python3 "$SUPPORT/snappy_interop.py" compress "$SRC/src.raw" "$SRC/block.sz" --piece $MIB \
  || { echo "snappy_interop.py failed" >&2; exit 1; }
# The source filesystem: disk.img (sparse), a file and a subdirectory; tarred as CDI's cloner does.
cp --sparse=always "$SRC/src.raw" "$SRC/fs/disk.img"
head -c 100000 /dev/urandom > "$SRC/fs/other.bin"
echo "nested" > "$SRC/fs/sub/note.txt"
(cd "$SRC/fs" && tar cv -S disk.img other.bin sub 2>/dev/null) > "$SRC/fs.tar"
/usr/bin/python3 "$SUPPORT/snappy_interop.py" compress "$SRC/fs.tar" "$SRC/fs.sz" --piece $MIB \
  || { echo "snappy_interop.py failed" >&2; exit 1; }
# A 32 MiB source for the too-large cases.
truncate -s $((32 * MIB)) "$SRC/big.raw"
head -c "$MIB" /dev/urandom | dd of="$SRC/big.raw" bs=1M seek=20 conv=notrunc status=none
/usr/bin/python3 "$SUPPORT/snappy_interop.py" compress "$SRC/big.raw" "$SRC/big.sz" --piece $MIB

# sz_edit MODE IN OUT: cut = IN up to the snappy chunk boundary nearest its middle (a stream the
# decoder alone would take as complete); crc = IN with one CRC byte of the middle chunk flipped.
sz_edit() {
  /usr/bin/python3 - "$@" <<'EOF'
import struct, sys
mode, src, dst = sys.argv[1:4]
data = bytearray(open(src, "rb").read())
off, starts = 0, []
while off < len(data):
    starts.append(off)
    off += 4 + (struct.unpack("<I", bytes(data[off:off + 4]))[0] >> 8)
assert off == len(data) and len(starts) > 4
mid = starts[len(starts) // 2]
assert data[mid] in (0, 1)   # a data chunk
if mode == "cut":
    data = data[:mid]
else:
    data[mid + 4] ^= 0x5a    # first byte of its masked CRC-32C
open(dst, "wb").write(bytes(data))
EOF
}
sz_edit cut "$SRC/block.sz" "$SRC/block-cut.sz"
sz_edit crc "$SRC/block.sz" "$SRC/block-crc.sz"
sz_edit cut "$SRC/fs.sz" "$SRC/fs-cut.sz"
sz_edit crc "$SRC/fs.sz" "$SRC/fs-crc.sz"

# --- the server and the client -----------------------------------------------------------------

# srv_start DEST [ARGS...]: the upload server with mutual TLS for $CN; sets SRV_PID and BASE.
srv_start() {
  local dest=$1
  shift
  : > "$W/_meta/srv.err"
  timeout -k 5 "$CMD_TIMEOUT" "$CDI" upload-server --listen 127.0.0.1:0 --dest "$dest" --progress none -v \
    --tls-cert "$CERTS/server.crt" --tls-key "$CERTS/server.key" --client-ca "$CERTS/ca.crt" --client-name "$CN" \
    "$@" > "$W/_meta/srv.out" 2> "$W/_meta/srv.err" &
  SRV_PID=$!
  register_pid "$SRV_PID"
  wait_server_port "$W/_meta/srv.err" "$SRV_PID"
  BASE=https://localhost:$PORT
}

# srv_wait RC: the server exits (within 30 s) with RC.
srv_wait() {
  local rc=0 i
  for i in $(seq 600); do
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
  done
  wait "$SRV_PID" || rc=$?
  ((rc == $1)) || { tail -n 20 "$W/_meta/srv.err" >&2; fail "upload server exited $rc, expected $1"; }
}

# srv_stop: a server that must still be running (a failed upload keeps it serving) is stopped.
srv_stop() {
  kill -0 "$SRV_PID" 2>/dev/null || { tail -n 20 "$W/_meta/srv.err" >&2; fail "upload server exited"; }
  kill -TERM "$SRV_PID"
  wait "$SRV_PID" || true
}

# clone KIND FILE [CURL ARGS...]: POSTs FILE chunked as a clone of KIND to /v1beta1/upload (or
# $ROUTE) with the client certificate (or $CERT); sets CODE, the body is in _meta/body.
clone() {
  local kind=$1 file=$2
  shift 2
  local cert=${CERT:-client}
  CODE=$(curl -sS --max-time 60 -o "$W/_meta/body" -w '%{http_code}' --cacert "$CERTS/ca.crt" \
    --cert "$CERTS/$cert.crt" --key "$CERTS/$cert.key" -X POST -H 'Transfer-Encoding: chunked' \
    -H "x-cdi-content-type: $kind" -H 'Content-Type: application/octet-stream' --data-binary @"$file" "$@" \
    "$BASE${ROUTE:-/v1beta1/upload}" || true)
  echo "  curl $kind $(basename "$file") $* -> $CODE $(head -c 300 "$W/_meta/body")" >&2
}

expect_code() {
  [[ $CODE == "$1" ]] || { tail -n 20 "$W/_meta/srv.err" >&2; fail "HTTP $CODE, expected $1 ($(head -c 300 "$W/_meta/body"))"; }
}

body_has() {
  grep -qF -- "$1" "$W/_meta/body" || fail "response body '$(head -c 300 "$W/_meta/body")' lacks '$1'"
}

# assert_sparse_copy GOT WANT: same bytes and size, and GOT allocates no more than WANT + 256 KiB.
assert_sparse_copy() {
  assert_same_bytes "$1" "$2"
  local got want
  got=$(stat -c %b "$1")
  want=$(stat -c %b "$2")
  echo "  allocated: $1 $((got * 512)) bytes, source $((want * 512)) bytes" >&2
  ((got * 512 <= want * 512 + 256 * 1024)) || fail "$1 allocates $((got * 512)) bytes, the source $((want * 512)) (holes lost)"
}

# device NAME SIZE: a loop device over a file of SIZE random bytes; sets DEV and DEV_FILE (its
# original content in $W/_meta/NAME.orig).
device() {
  DEV_FILE=$W/_meta/$1.img
  head -c "$2" /dev/urandom > "$DEV_FILE"
  cp "$DEV_FILE" "$W/_meta/$1.orig"
  DEV=$(make_loop "$DEV_FILE")
}

# assert_dir_empty DIR: nothing at all in DIR (no partial file, no staging directory).
assert_dir_empty() {
  local left
  left=$(find "$1" -mindepth 1 | head -n 5)
  [[ -z $left ]] || fail "left in $1: $left"
}

# cut_post MODE KIND FILE: sends FILE over mutual TLS as a clone of KIND, then ends the connection
# cleanly (TLS close_notify, then FIN) without completing the body: MODE chunked = every chunk but
# no terminating chunk (curl would send one when it gives up); length = a Content-Length 64 KiB
# larger than FILE. Sets CODE to the status the server answered before closing ("none" when it
# answered nothing).
cut_post() {
  CODE=$(/usr/bin/python3 - "$PORT" "$CERTS" "$@" <<'EOF2'
import os, socket, ssl, sys
port, certs, mode, kind, path = sys.argv[1:6]
data = open(path, "rb").read()
ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
ctx.load_cert_chain(os.path.join(certs, "client.crt"), os.path.join(certs, "client.key"))
raw = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
s = ctx.wrap_socket(raw, server_hostname="localhost")
head = "POST /v1beta1/upload HTTP/1.1\r\nHost: localhost\r\nx-cdi-content-type: %s\r\n" % kind
if mode == "chunked":
    s.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
    for i in range(0, len(data), 65536):
        c = data[i:i + 65536]
        s.sendall(b"%x\r\n" % len(c) + c + b"\r\n")
else:
    s.sendall((head + "Content-Length: %d\r\n\r\n" % (len(data) + 65536)).encode())
    s.sendall(data)
try:
    s.unwrap()          # close_notify: a clean end of the TLS stream (the answer may follow at once)
except ssl.SSLError:
    pass
socket.socket.shutdown(s, socket.SHUT_WR)   # FIN, keeping the TLS state to read the answer
reply = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        reply += b
except OSError:
    pass
print(reply.split(b" ")[1].decode() if reply.startswith(b"HTTP/") else "none")
EOF2
)
  echo "  cut_post $* -> $CODE" >&2
}

# --- successful clones -------------------------------------------------------------------------

t_block_to_file() {
  srv_start "$W/dest/disk.img"
  clone blockdevice-clone "$SRC/block.sz"
  expect_code 200
  srv_wait 0
  assert_sparse_copy "$W/dest/disk.img" "$SRC/src.raw"
  # verbatim: the qcow2 header was not taken for an image to convert
  [[ $(head -c 4 "$W/dest/disk.img" | od -An -tx1 | tr -d ' ') == 514649fb ]] || fail "qcow2 magic not kept"
  grep -q "upload > snappy > raw" "$W/_meta/srv.err" || fail "summary does not show the clone chain"
}

t_block_to_directory() {
  # a directory target gets disk.img (CDI's /data/disk.img)
  srv_start "$W/dest"
  clone blockdevice-clone "$SRC/block.sz"
  expect_code 200
  srv_wait 0
  assert_sparse_copy "$W/dest/disk.img" "$SRC/src.raw"
}

# t_to_block KIND MIB FILE: a clone into a MIB MiB device: its first source-size bytes are the
# source's; past them the device keeps what it held (CDI's StreamDataToFile writes the stream only).
t_to_block() {
  require_root
  device tgt $(($2 * MIB))
  srv_start "$DEV"
  clone "$1" "$SRC/$3"
  expect_code 200
  srv_wait 0
  cmp -n "$SRC_SIZE" "$DEV" "$SRC/src.raw" >&2 || fail "device differs from the source ($1)"
  cmp -i "$SRC_SIZE" "$DEV" "$W/_meta/tgt.orig" >&2 || fail "the device tail past the source was changed"
}

t_fs_to_file() {
  # the target already has a file of its own and lost+found: both stay, the tar is merged in
  mkdir -p "$W/dest/lost+found"
  echo keep > "$W/dest/keep.txt"
  srv_start "$W/dest/disk.img"
  clone filesystem-clone "$SRC/fs.sz"
  expect_code 200
  srv_wait 0
  assert_sparse_copy "$W/dest/disk.img" "$SRC/src.raw"
  assert_same_bytes "$W/dest/other.bin" "$SRC/fs/other.bin"
  assert_same_bytes "$W/dest/sub/note.txt" "$SRC/fs/sub/note.txt"
  [[ $(cat "$W/dest/keep.txt") == keep && -d $W/dest/lost+found ]] || fail "existing content lost"
  local n
  n=$(find "$W/dest" -mindepth 1 | wc -l)
  ((n == 6)) || { find "$W/dest" >&2; fail "expected 6 entries in the target, found $n"; }
  grep -q "upload > snappy > tar" "$W/_meta/srv.err" || fail "summary does not show the clone chain"
}

t_upload_form_route() {
  # CDI decides a clone by the header before the route: the sync archive route takes it too
  ROUTE=/v1alpha1/upload-archive
  srv_start "$W/dest/disk.img"
  clone blockdevice-clone "$SRC/block.sz"
  expect_code 200
  srv_wait 0
  assert_sparse_copy "$W/dest/disk.img" "$SRC/src.raw"
}

# --- refusals and failures ---------------------------------------------------------------------

t_wrong_cn() {
  srv_start "$W/dest/disk.img"
  CERT=wrongcn clone blockdevice-clone "$SRC/block.sz"
  expect_code 401
  assert_dir_empty "$W/dest"
  # the right client still gets through afterwards
  clone blockdevice-clone "$SRC/block.sz"
  expect_code 200
  srv_wait 0
  assert_same_bytes "$W/dest/disk.img" "$SRC/src.raw"
}

t_async_refused() {
  local r
  srv_start "$W/dest/disk.img"
  for r in /v1beta1/upload-async /v1alpha1/upload-async; do
    ROUTE=$r clone blockdevice-clone "$SRC/block.sz"
    expect_code 500
    body_has "Saving stream failed: async clone not supported"
  done
  # the form route too (a real multipart body)
  CODE=$(curl -sS --max-time 60 -o "$W/_meta/body" -w '%{http_code}' --cacert "$CERTS/ca.crt" \
    --cert "$CERTS/client.crt" --key "$CERTS/client.key" -H 'x-cdi-content-type: filesystem-clone' \
    -F "file=@$SRC/fs.sz" "$BASE/v1beta1/upload-form-async" || true)
  expect_code 500
  body_has "Saving stream failed: async clone not supported"
  assert_dir_empty "$W/dest"
  srv_stop
}

# cut/corrupt cases on the three kinds of target: nothing complete-looking is left.
# t_cut TARGET MODE KIND FILE WANT: TARGET "file" (dest/disk.img) or a device size in MiB; MODE and
# KIND as cut_post takes them; WANT "early" (the server logs "request body ended early") or "any"
# (some upload failure). Then the file target's directory is empty, or the device's first MiB
# (the held-back head never reached it, and abort wiped it) is zeros.
t_cut() {
  local target=$1 mode=$2 kind=$3 file=$4 want=$5
  if [[ $target == file ]]; then
    srv_start "$W/dest/disk.img"
  else
    require_root
    device tgt $((target * MIB))
    srv_start "$DEV"
  fi
  cut_post "$mode" "$kind" "$SRC/$file"
  [[ $CODE != 200 ]] || fail "a cut body was answered 200"   # (a client that cut its body gets no answer)
  for _ in $(seq 100); do grep -q "upload failed" "$W/_meta/srv.err" && break; sleep 0.05; done
  if [[ $want == early ]]; then
    grep -q "upload failed (.*request body ended early" "$W/_meta/srv.err" || { tail "$W/_meta/srv.err" >&2; fail "no body-ended-early failure"; }
  else
    grep -q "upload failed" "$W/_meta/srv.err" || { tail "$W/_meta/srv.err" >&2; fail "no failure logged"; }
  fi
  if [[ $target == file ]]; then
    assert_dir_empty "$W/dest"
  else
    is_zero "$DEV" 0 "$MIB" || fail "the device's first MiB is not wiped after a cut clone"
  fi
  srv_stop
}
# name                     target mode    kind              file          want
CUT_CASES=(
  # cut exactly at a snappy chunk boundary: only the missing chunked terminator tells
  "cut_chunk_boundary_file  file   chunked blockdevice-clone block-cut.sz  early"
  # the whole (valid) stream, but 64 KiB less than Content-Length promised
  "cut_content_length_fs    file   length  filesystem-clone  fs.sz         early"
  "cut_fs_block             20     chunked filesystem-clone  fs-cut.sz     any"
  # the complete stream without the chunked terminator
  "cut_block_block          16     chunked blockdevice-clone block.sz      early"
  # the complete tar stream, only the chunked terminator missing: the stages read their input to
  # its end, so the transport's error arrives before anything is committed
  "cut_terminator_fs_dir    file   chunked filesystem-clone  fs.sz         early"
  "cut_terminator_fs_block  20     chunked filesystem-clone  fs.sz         early"
)

t_bad_crc_file() {
  srv_start "$W/dest/disk.img"
  clone blockdevice-clone "$SRC/block-crc.sz"
  expect_code 500
  body_has "Saving stream failed:"
  grep -qi "crc" "$W/_meta/body" || fail "the error does not name the CRC"
  assert_dir_empty "$W/dest"
  srv_stop
}

t_bad_crc_fs_dir() {
  mkdir -p "$W/dest/lost+found"
  srv_start "$W/dest/disk.img"
  clone filesystem-clone "$SRC/fs-crc.sz"
  expect_code 500
  grep -qi "crc" "$W/_meta/body" || fail "the error does not name the CRC"
  local left
  left=$(cd "$W/dest" && find . -mindepth 1)
  [[ $left == ./lost+found ]] || fail "left in the target: $left"
  srv_stop
}

t_bad_crc_block() {
  require_root
  device tgt $((16 * MIB))
  srv_start "$DEV"
  clone blockdevice-clone "$SRC/block-crc.sz"
  expect_code 500
  is_zero "$DEV" 0 "$MIB" || fail "the device's first MiB is not wiped after a failed clone"
  srv_stop
}

t_too_large_block() {
  require_root
  device tgt $((16 * MIB))
  srv_start "$DEV"
  clone blockdevice-clone "$SRC/big.sz"
  expect_code 400
  body_has "effective image size is larger than the reported available storage"
  body_has "larger than the device"
  is_zero "$DEV" 0 "$MIB" || fail "the device's first MiB is not wiped"
  srv_stop
}

t_too_large_fs_block() {
  require_root
  # a tar whose disk.img (32 MiB) cannot fit the 16 MiB device: refused from the tar header
  mkdir -p "$W/_meta/bigfs"
  cp --sparse=always "$SRC/big.raw" "$W/_meta/bigfs/disk.img"
  (cd "$W/_meta/bigfs" && tar cv -S disk.img 2>/dev/null) > "$W/_meta/big.tar"
  /usr/bin/python3 "$SUPPORT/snappy_interop.py" compress "$W/_meta/big.tar" "$W/_meta/big.tar.sz"
  device tgt $((16 * MIB))
  srv_start "$DEV"
  clone filesystem-clone "$W/_meta/big.tar.sz"
  expect_code 400
  body_has "clone source is larger than the device"
  cmp "$DEV" "$W/_meta/tgt.orig" >&2 || fail "the device was written"
  srv_stop
}

t_too_large_image_size() {
  srv_start "$W/dest/disk.img" --image-size 8Mi
  clone blockdevice-clone "$SRC/block.sz"
  expect_code 400
  body_has "effective image size is larger than the reported available storage"
  assert_dir_empty "$W/dest"
  srv_stop
}

# --- pod mode ----------------------------------------------------------------------------------

UPSRV=$(dirname "$CDI")/cdi-uploadserver
if [[ ! -x $UPSRV ]]; then ln -s "$CDI" "$T/cdi-uploadserver"; UPSRV=$T/cdi-uploadserver; fi

# pod_clone KIND FILE WANT_TERMINATION: cdi-uploadserver with CDI's environment under a fresh
# CDI_IMPORT_ROOT takes one clone and ends with exactly WANT_TERMINATION in /dev/termination-log.
pod_clone() {
  local kind=$1 file=$2 want=$3 rc=0 i
  R=$W/root
  mkdir -p "$R/data" "$R/dev" "$R/etc/tls"
  cp "$CERTS/server.crt" "$R/etc/tls/tls.crt"
  cp "$CERTS/server.key" "$R/etc/tls/tls.key"
  cp "$CERTS/ca.crt" "$R/etc/tls/ca.crt"
  : > "$W/_meta/srv.err"
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$R" LISTEN_ADDRESS=127.0.0.1 LISTEN_PORT=0 DESTINATION=/data/disk.img \
    TLS_CERT_FILE=/etc/tls/tls.crt TLS_KEY_FILE=/etc/tls/tls.key CLIENT_CERT_FILE=/etc/tls/ca.crt \
    CLIENT_NAME="$CN" UPLOAD_IMAGE_SIZE=64Mi FILESYSTEM_OVERHEAD=0.06 PREALLOCATION=false \
    timeout -k 5 60 "$UPSRV" -v=1 2> "$W/_meta/srv.err" &
  SRV_PID=$!
  register_pid "$SRV_PID"
  PORT=
  for i in $(seq 200); do
    PORT=$(grep -oE 'Upload server listening on port [0-9]+' "$W/_meta/srv.err" | awk '{print $6}' || true)
    [[ -n $PORT ]] && break
    sleep 0.05
  done
  [[ -n $PORT ]] || { cat "$W/_meta/srv.err" >&2; fail "cdi-uploadserver did not start"; }
  BASE=https://localhost:$PORT
  clone "$kind" "$file"
  expect_code 200
  wait "$SRV_PID" || rc=$?
  ((rc == 0)) || { tail "$W/_meta/srv.err" >&2; fail "cdi-uploadserver exited $rc"; }
  local got
  got=$(cat "$R/dev/termination-log"; echo x)
  got=${got%x}
  [[ $got == "$want" ]] || fail "termination log: '$got', expected '$want'"
  [[ $(stat -c %a "$R/dev/termination-log") == 600 ]] || fail "termination log mode is not 0600"
}

t_pod_block_clone() {
  pod_clone blockdevice-clone "$SRC/block.sz" '{"preallocationApplied":false,"message":"Clone Complete"}'
  # the file is the source's size (no resize to the request), holes kept
  assert_sparse_copy "$R/data/disk.img" "$SRC/src.raw"
}

t_pod_fs_clone() {
  # CDI's fileToFileCloneProcessor reports preallocationApplied true
  pod_clone filesystem-clone "$SRC/fs.sz" '{"preallocationApplied":true,"message":"Clone Complete"}'
  assert_sparse_copy "$R/data/disk.img" "$SRC/src.raw"
  assert_same_bytes "$R/data/other.bin" "$SRC/fs/other.bin"
  assert_same_bytes "$R/data/sub/note.txt" "$SRC/fs/sub/note.txt"
}

run_test block_to_file t_block_to_file
run_test block_to_directory t_block_to_directory
run_test block_to_block t_to_block blockdevice-clone 24 block.sz
run_test fs_to_file t_fs_to_file
run_test fs_to_block t_to_block filesystem-clone 20 fs.sz
run_test archive_route t_upload_form_route
run_test wrong_cn t_wrong_cn
run_test async_refused t_async_refused
for c in "${CUT_CASES[@]}"; do
  read -r name args <<< "$c"
  read -r -a args <<< "$args"
  run_test "$name" t_cut "${args[@]}"
done
run_test bad_crc_file t_bad_crc_file
run_test bad_crc_fs_dir t_bad_crc_fs_dir
run_test bad_crc_block t_bad_crc_block
run_test too_large_block t_too_large_block
run_test too_large_fs_block t_too_large_fs_block
run_test too_large_image_size t_too_large_image_size
run_test pod_block_clone t_pod_block_clone
run_test pod_fs_clone t_pod_fs_clone
finish
