#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The CDI-style receiving side for bench/upload.sh: accepts ONE POST on 127.0.0.1 and writes its
body (Content-Length or chunked) to a file, or pipes it into a command's stdin, with 1 MiB reads.
Prints the port on stdout, answers 200 once the file is written (fsync) or the command exited 0,
then exits.
  upload_receiver.py file PATH
  upload_receiver.py pipe 'SHELL COMMAND'
"""
import os
import socket
import subprocess
import sys

CHUNK = 1 << 20


def main():
    mode, arg = sys.argv[1], sys.argv[2]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    print(ls.getsockname()[1], flush=True)
    conn, _ = ls.accept()
    f = conn.makefile("rb", buffering=CHUNK)
    length, chunked, expect = None, False, False
    f.readline()
    while True:
        line = f.readline().decode("latin-1").strip()
        if not line:
            break
        k, _, v = line.partition(":")
        k, v = k.strip().lower(), v.strip()
        if k == "content-length":
            length = int(v)
        elif k == "transfer-encoding" and "chunked" in v.lower():
            chunked = True
        elif k == "expect" and v.lower() == "100-continue":
            expect = True
    if expect:
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if mode == "file":
        out = open(arg, "wb")
        proc = None
    else:
        proc = subprocess.Popen(arg, shell=True, stdin=subprocess.PIPE)
        out = proc.stdin
    buf = bytearray(CHUNK)
    view = memoryview(buf)

    def copy(n):
        while n > 0:
            got = f.readinto(view[: min(n, CHUNK)])
            if not got:
                raise SystemExit("receiver: body ended early")
            out.write(view[:got])
            n -= got

    if chunked:
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                f.readline()
                break
            copy(size)
            f.readline()
    else:
        copy(length or 0)
    out.flush()
    if proc:
        out.close()
        ok = proc.wait() == 0
    else:
        os.fsync(out.fileno())
        out.close()
        ok = True
    conn.sendall(b"HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % (b"200 OK" if ok else b"500 Error"))
    conn.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
