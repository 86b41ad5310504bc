#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# bench/count_relay.py LISTEN_PORT TARGET_PORT STATS_FILE [--cut-after N]: a TCP relay on
# 127.0.0.1 that counts the bytes crossing it (TLS passes through untouched). After every
# connection it rewrites STATS_FILE with "<client->server bytes> <server->client bytes>
# <connections>" (totals). --cut-after N: once N client->server bytes of a connection have been
# forwarded, both sides of that connection are shut down (FIN mid-body: a cut stream). Prints
# "listening" on stdout when ready. Runs until killed. Used by bench/clone.sh.
import socket
import sys
import threading

listen_port, target_port, stats = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cut_after = int(sys.argv[sys.argv.index("--cut-after") + 1]) if "--cut-after" in sys.argv else None
lock = threading.Lock()
totals = [0, 0, 0]


def write_stats():
    with open(stats + ".tmp", "w") as f:
        f.write(f"{totals[0]} {totals[1]} {totals[2]}\n")
    import os
    os.replace(stats + ".tmp", stats)


def abort(s):
    # shutdown first: a close() alone would not reach the kernel while the other pump thread is
    # blocked in recv() on the same socket
    for how in (socket.SHUT_RDWR,):
        try:
            s.shutdown(how)
        except OSError:
            pass
    try:
        s.close()
    except OSError:
        pass


def pump(src, dst, idx, limit, done):
    n = 0
    try:
        while True:
            want = 1 << 16
            if limit is not None:
                want = min(want, limit - n)
                if want <= 0:
                    abort(src)
                    abort(dst)
                    break
            data = src.recv(want)
            if not data:
                dst.shutdown(socket.SHUT_WR)
                break
            dst.sendall(data)
            n += len(data)
    except OSError:
        pass
    with lock:
        totals[idx] += n
    done.set()


def serve(client):
    try:
        server = socket.create_connection(("127.0.0.1", target_port))
    except OSError:
        client.close()
        return
    d1, d2 = threading.Event(), threading.Event()
    threading.Thread(target=pump, args=(client, server, 0, cut_after, d1), daemon=True).start()
    threading.Thread(target=pump, args=(server, client, 1, None, d2), daemon=True).start()
    d1.wait()
    d2.wait()
    for s in (client, server):
        try:
            s.close()
        except OSError:
            pass
    with lock:
        totals[2] += 1
        write_stats()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", listen_port))
ls.listen(16)
with lock:
    write_stats()
print("listening", flush=True)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
