#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A small HTTP upload client for the fault cases curl cannot produce on demand (stdlib only).

  upload_client.py disconnect URL FILE NBYTES
      POST FILE with its full Content-Length, send only the first NBYTES, then reset the connection
      (SO_LINGER 0). Exits 0 once the connection is gone.
  upload_client.py chunked URL FILE [CHUNK]
      POST FILE with Transfer-Encoding: chunked (no Content-Length), CHUNK bytes a chunk (default
      a mix of odd sizes). Prints the status code and the body's first line.
  upload_client.py hold URL FILE NBYTES GO_FILE [TIMEOUT]
      POST FILE, send NBYTES, then wait until GO_FILE exists (default at most 30 s) before sending
      the rest. Prints the status code. Used to keep an upload in flight (503 for others).
"""
import os
import socket
import struct
import sys
import time
import urllib.parse


def connect(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http":
        sys.exit("upload_client.py: only http:// URLs")
    s = socket.create_connection((u.hostname, u.port or 80), timeout=60)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return s, path, f"{u.hostname}:{u.port or 80}"


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest.decode("utf-8", "replace").split("\n")[0]


def headers(path, host, extra):
    h = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n"
    for line in extra:
        h += line + "\r\n"
    return (h + "\r\n").encode()


def send_file(s, f, nbytes):
    left = nbytes
    while left > 0:
        buf = f.read(min(left, 1 << 20))
        if not buf:
            break
        s.sendall(buf)
        left -= len(buf)


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    mode, url, path_in = argv[1], argv[2], argv[3]
    size = os.path.getsize(path_in)
    s, path, host = connect(url)
    with open(path_in, "rb") as f:
        if mode == "disconnect":
            nbytes = int(argv[4])
            s.sendall(headers(path, host, [f"Content-Length: {size}"]))
            send_file(s, f, nbytes)
            time.sleep(0.2)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            return 0
        if mode == "chunked":
            sizes = [int(argv[4])] if len(argv) > 4 else [1, 4095, 65536, 777, 1 << 20, 3]
            s.sendall(headers(path, host, ["Transfer-Encoding: chunked"]))
            i = 0
            while True:
                buf = f.read(sizes[i % len(sizes)])
                i += 1
                if not buf:
                    break
                s.sendall(b"%x\r\n" % len(buf) + buf + b"\r\n")
            s.sendall(b"0\r\n\r\n")
            status, line = read_response(s)
            print(status, line)
            return 0
        if mode == "hold":
            nbytes, go = int(argv[4]), argv[5]
            timeout = float(argv[6]) if len(argv) > 6 else 30.0
            s.sendall(headers(path, host, [f"Content-Length: {size}"]))
            send_file(s, f, nbytes)
            deadline = time.monotonic() + timeout
            while not os.path.exists(go) and time.monotonic() < deadline:
                time.sleep(0.02)
            send_file(s, f, size - nbytes)
            status, line = read_response(s)
            print(status, line)
            return 0
    sys.exit(f"upload_client.py: unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
