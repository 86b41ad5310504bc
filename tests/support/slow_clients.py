#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Opens many slow or idle connections to a server on 127.0.0.1 (or ::1) and holds them:
#   idle       connect, send nothing
#   trickle    send half a request header, then one byte a second
#   tls-stall  send the first 3 bytes of a TLS record (the handshake never completes)
#   tls-idle   complete the TLS handshake, then send nothing
#   tls-trickle  complete the TLS handshake, then half a header at one byte a second
# Usage: slow_clients.py HOST PORT SECONDS MODE=COUNT...   Prints "ready N" once every connection
# is open, then holds them for SECONDS and prints "closed-by-server K" (connections the server
# ended) before exiting. Bounded: at most 1000 connections, at most 120 seconds.
import socket
import ssl
import sys
import time


def main():
    host, port, seconds = sys.argv[1], int(sys.argv[2]), min(float(sys.argv[3]), 120.0)
    plan = []
    for arg in sys.argv[4:]:
        mode, count = arg.split("=")
        plan += [mode] * int(count)
    plan = plan[:1000]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conns = []
    for mode in plan:
        s = socket.create_connection((host, port), timeout=10)
        if mode == "tls-stall":
            s.sendall(b"\x16\x03\x01")
        elif mode in ("tls-idle", "tls-trickle"):
            s = ctx.wrap_socket(s, server_hostname="localhost")
        elif mode == "trickle":
            s.sendall(b"POST /v1beta1/upload HTTP/1.1\r\nHost: x\r\n")
        if mode == "tls-trickle":
            s.sendall(b"POST /v1beta1/upload HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        conns.append([mode, s, True])
    print("ready", len(conns), flush=True)
    end = time.monotonic() + seconds
    closed = 0
    while time.monotonic() < end:
        for c in conns:
            if not c[2]:
                continue
            mode, s = c[0], c[1]
            try:
                if mode in ("trickle", "tls-trickle"):
                    s.send(b"X")
                d = s.recv(4096)
                if d == b"" or d:
                    # Server answered (e.g. 408/400) or closed: the connection is over.
                    c[2] = False
                    closed += 1
                    s.close()
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except OSError:
                c[2] = False
                closed += 1
                s.close()
        time.sleep(1)
    print("closed-by-server", closed, flush=True)
    for c in conns:
        try:
            c[1].close()
        except OSError:
            pass


if __name__ == "__main__":
    main()
