#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""fault_server.py DOCROOT [--portfile F] [--lifetime S]

A small HTTP/1.1 server (python3 stdlib) that serves files from DOCROOT and misbehaves on purpose,
for the HTTP source's fault tests. Binds 127.0.0.1 on a kernel-chosen port, writes the port to
--portfile and exits by itself after --lifetime seconds, so a crashed test cannot leak it. Every
request is logged on stderr as: fault-server: MODE PATH range=RANGE if-range=IF_RANGE if-match=IF_MATCH status=N

URLs (FILE is a path under DOCROOT; ?n=K makes the fault hit the first K requests of that exact
URL, default 1; add any other query, e.g. ?n=1&t=NAME, to get a fresh counter):
  /ok/FILE               Range (bytes=A- / A-B) and If-Range honoured: 206 + Content-Range; ETag;
                         If-Match / If-Unmodified-Since (exact date) not met: 412
  /noetag/FILE           as /ok/ without an ETag (Last-Modified only)
  /norange/FILE          always 200 with the whole file (Range ignored)
  /truncate/N/FILE       faulty requests: full Content-Length, N bytes, then FIN; later ones as /ok/
  /reset/N/FILE          faulty requests: N bytes then TCP RST
  /stall/N/FILE          faulty requests: N bytes then silence until the client goes (max 300 s)
  /flaky/RA/FILE         faulty requests: 503 with Retry-After: RA (seconds; "-" for none)
  /norange-reset/N/FILE  first request as /reset/, later ones as /norange/
  /changed/N/FILE        faulty requests as /reset/; later ones carry another ETag (file changed)
  /norange-changed/FILE  Range ignored (200, no Accept-Ranges), ETag and If-Match honoured; the faulty
                         requests (?n=K) have one ETag, later ones another (changed between two reads)
  /chunked/FILE          chunked, no Content-Length; Range honoured (206, chunked)
  /chunked-cut/N/FILE    faulty requests: chunked, N bytes, then FIN without the last chunk
  /html                  200 text/html error page
  /status/CODE           empty reply with that status
  /slow/KIBPS/FILE       every request: the file at about KIBPS KiB/s (progress tests)
"""
import argparse
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("docroot")
ap.add_argument("--portfile", required=True)
ap.add_argument("--lifetime", type=float, default=900)
args = ap.parse_args()
DOCROOT = os.path.realpath(args.docroot)
COUNTS = {}
LOCK = threading.Lock()


def hit(url):
    with LOCK:
        COUNTS[url] = COUNTS.get(url, 0) + 1
        return COUNTS[url]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def note(self, mode, status):
        sys.stderr.write("fault-server: %s %s range=%s if-range=%s if-match=%s status=%d\n" % (
            mode, self.path, self.headers.get("Range", "-"), self.headers.get("If-Range", "-"),
            self.headers.get("If-Match", "-"), status))
        sys.stderr.flush()

    def file_for(self, rel):
        p = os.path.realpath(os.path.join(DOCROOT, rel))
        if not p.startswith(DOCROOT + os.sep) or not os.path.isfile(p):
            return None
        return p

    def empty(self, mode, code, extra=()):
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.note(mode, code)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        params = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
        faulty_count = int(params.get("n", "1"))
        parts = path.lstrip("/").split("/")
        mode = parts[0]
        try:
            if mode == "status":
                return self.empty(mode, int(parts[1]))
            if mode == "html":
                body = b"<!DOCTYPE html>\n<html><body>Your link has expired</body></html>\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return self.note(mode, 200)
            with_arg = mode in ("truncate", "reset", "stall", "flaky", "norange-reset", "changed", "chunked-cut", "slow")
            arg = parts[1] if with_arg else None
            rel = "/".join(parts[2:] if with_arg else parts[1:])
            fpath = self.file_for(rel)
            if fpath is None:
                return self.empty(mode, 404)
            faulty = with_arg and mode != "slow" and hit(self.path) <= faulty_count
            self.serve(mode, arg, faulty, fpath)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def serve(self, mode, arg, faulty, fpath):
        size = os.path.getsize(fpath)
        mtime = int(os.path.getmtime(fpath))
        etag = '"%x-%x"' % (size, mtime)
        if mode == "norange-changed":
            faulty = hit(self.path) <= int(dict(kv.split("=", 1) for kv in self.path.partition("?")[2].split("&")
                                                if "=" in kv).get("n", "1"))
            if not faulty:
                etag = '"changed-%x"' % size
            faulty = False
        if mode == "changed" and not faulty:
            etag = '"changed-%x"' % size
        if mode == "flaky" and faulty:
            extra = [] if arg == "-" else [("Retry-After", arg)]
            return self.empty(mode, 503, extra)
        norange = mode == "norange" or (mode == "norange-reset" and not faulty)
        if not norange:   # preconditions of random access reads (RFC 9110 13.1.1, 13.1.4)
            if_match = self.headers.get("If-Match")
            ius = self.headers.get("If-Unmodified-Since")
            if mode == "noetag":
                if_match = None
            if (if_match is not None and if_match != etag) or (
                    if_match is None and ius is not None and ius != self.date(mtime)):
                return self.empty(mode, 412)
        first, last = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if mode == "norange-changed":
            norange = True
        if rng and not norange and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range == etag or if_range == self.date(mtime):
                first = int(a)
                last = min(int(b), size - 1) if b else size - 1
                status = 206
                if first >= size:
                    return self.empty(mode, 416, [("Content-Range", "bytes */%d" % size)])
        chunked = mode in ("chunked", "chunked-cut")
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if mode == "norange-changed":
            self.send_header("ETag", etag)
        if not norange:
            if mode != "noetag":
                self.send_header("ETag", etag)
            self.send_header("Last-Modified", self.date(mtime))
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        self.note(mode + ("(fault)" if faulty else ""), status)
        limit = last - first + 1
        if faulty and mode in ("truncate", "reset", "stall", "norange-reset", "changed", "chunked-cut"):
            limit = min(limit, int(arg))
        with open(fpath, "rb") as f:
            f.seek(first)
            left = limit
            while left > 0:
                b = f.read(min(left, 1 << 14 if mode == "slow" else 1 << 16))
                if not b:
                    break
                if mode == "slow":
                    time.sleep(len(b) / (float(arg) * 1024))
                self.wfile.write(b"%x\r\n" % len(b) + b + b"\r\n" if chunked else b)
                left -= len(b)
            if chunked and not faulty:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        if not faulty:
            return
        self.close_connection = True
        if mode == "stall":
            self.connection.settimeout(300)
            try:
                while self.connection.recv(65536):
                    pass
            except OSError:
                pass
        elif mode in ("reset", "norange-reset", "changed"):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    @staticmethod
    def date(t):
        return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(t))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", 0), Handler)
with open(args.portfile + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(args.portfile + ".tmp", args.portfile)
threading.Timer(args.lifetime, lambda: os._exit(0)).start()
srv.serve_forever()
