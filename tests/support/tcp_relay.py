#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A TCP relay on 127.0.0.1 between a client and a server, for the clone tests and bench.

TLS passes through it untouched (it relays bytes, it does not terminate anything), so the two ends
still authenticate each other. It can
  * count the bytes each way (--count-file: "UP DOWN CONNECTIONS" written after every connection
    closes; UP = client -> server, totals over all connections), which is how bench/clone.sh
    measures bytes on the wire;
  * cut the client -> server direction after N bytes (--cut-after N): both sockets are then closed
    abruptly (RST), as a network failure or a killed pod would, in the middle of a request body.

Usage: tcp_relay.py --to PORT --portfile FILE [--listen PORT] [--cut-after N] [--count-file FILE]
The relay listens on --listen (default: a kernel-chosen port), writes the port to --portfile, and
runs until killed.
"""
import argparse
import os
import socket
import struct
import threading

lock = threading.Lock()
totals = [0, 0, 0]


def write_counts(path):
    if not path:
        return
    with lock:
        text = "%d %d %d\n" % tuple(totals)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def abort(sock):
    # shutdown first: close() alone does not release a socket another thread is blocked in
    # recv() on, so nothing would reach the peer
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def pump(src, dst, index, budget, done):
    """Copies src -> dst. budget: bytes allowed before the cut (None = unlimited)."""
    try:
        while True:
            want = 65536 if budget is None else min(65536, budget[0])
            if want == 0:
                break
            data = src.recv(want)
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            dst.sendall(data)
            with lock:
                totals[index] += len(data)
            if budget is not None:
                budget[0] -= len(data)
        # the budget is spent: cut both connections
        done.set()
    except OSError:
        done.set()


def serve(client, args):
    try:
        server = socket.create_connection(("127.0.0.1", args.to))
    except OSError:
        abort(client)
        return
    done = threading.Event()
    budget = [args.cut_after] if args.cut_after is not None else None
    up = threading.Thread(target=pump, args=(client, server, 0, budget, done), daemon=True)
    down = threading.Thread(target=pump, args=(server, client, 1, None, done), daemon=True)
    up.start()
    down.start()
    if budget is not None:
        # cut mode: wait for the budget to run out (or either side to fail), then reset both
        while up.is_alive() or down.is_alive():
            if done.wait(0.05):
                abort(client)
                abort(server)
                break
    up.join()
    down.join()
    client.close()
    server.close()
    with lock:
        totals[2] += 1
    write_counts(args.count_file)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", type=int, required=True)
    ap.add_argument("--portfile", required=True)
    ap.add_argument("--listen", type=int, default=0)
    ap.add_argument("--cut-after", type=int)
    ap.add_argument("--count-file")
    args = ap.parse_args()
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", args.listen))
    lst.listen(64)
    write_counts(args.count_file)
    tmp = args.portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % lst.getsockname()[1])
    os.replace(tmp, args.portfile)
    while True:
        client, _ = lst.accept()
        threading.Thread(target=serve, args=(client, args), daemon=True).start()


if __name__ == "__main__":
    main()
