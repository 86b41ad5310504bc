#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""registry_proxy.py UPSTREAM --mode corrupt|corrupt-second|redirect|cut --portfile F [--storage DIR] [--lifetime S]

A misbehaving front for a plain-HTTP docker-registry on 127.0.0.1 (stdlib only):
  corrupt   every request is forwarded; the body of a blob GET (other than a small config)
            leaves with one byte flipped in its middle: a registry serving corrupted data.
  corrupt-second  like corrupt, but only from the SECOND GET of each blob on: the first read
            of an image is intact, a second read of it (a two-read qcow2) is not.
  redirect  blob GETs answer 307 to http://localhost:PORT/cdn/sha256/<hex>?sig=…, served from
            the registry's filesystem storage (--storage = its rootdirectory), like a CDN on
            another origin (localhost vs 127.0.0.1). A CDN request carrying an Authorization
            header is refused with 400 (credentials leaked) and logged as LEAK.
  cut       the FIRST blob GET larger than 64 KiB sends half of its body and closes the
            connection (a drop mid-pull: the client resumes with Range); later ones are whole.
Everything else is proxied unchanged. Log lines on stderr: "<mode> <method> <path> -> <status>".
"""
import argparse, http.client, os, re, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ap = argparse.ArgumentParser()
ap.add_argument("upstream")
ap.add_argument("--mode", choices=["corrupt", "corrupt-second", "redirect", "cut"], required=True)
ap.add_argument("--portfile", required=True)
ap.add_argument("--storage")
ap.add_argument("--lifetime", type=float, default=900)
a = ap.parse_args()
UP = urlparse(a.upstream)
BLOB = re.compile(r"^/v2/.+/blobs/sha256:([0-9a-f]{64})$")
CUT = {"done": False}
SEEN = {}   # corrupt-second: blob GETs per path
LOCK = threading.Lock()
CDN = re.compile(r"^/cdn/sha256/([0-9a-f]{64})(\?.*)?$")


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def note(self, status, extra=""):
        sys.stderr.write("%s %s %s -> %s%s\n" % (a.mode, self.command, self.path, status, extra))
        sys.stderr.flush()

    def forward(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(n) if n else None
        conn = http.client.HTTPConnection(UP.hostname, UP.port, timeout=60)
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        hdrs["Host"] = self.headers.get("Host", "")
        conn.request(self.command, self.path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        m = BLOB.match(self.path)
        flipped = ""
        later = False
        if a.mode == "corrupt-second" and self.command == "GET" and m:
            with LOCK:
                SEEN[self.path] = SEEN.get(self.path, 0) + 1
                later = SEEN[self.path] > 1
        if (a.mode == "corrupt" or later) and self.command == "GET" and m and r.status in (200, 206) and len(data) > 4096:
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
            flipped = " (byte %d flipped)" % i
        cut = False
        if a.mode == "cut" and self.command == "GET" and m and r.status == 200 and len(data) > 65536 and not CUT["done"]:
            CUT["done"] = cut = True
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if cut:
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return self.note(r.status, " (cut after %d of %d bytes)" % (len(data) // 2, len(data)))
        if self.command != "HEAD":
            self.wfile.write(data)
        self.note(r.status, flipped)

    def cdn(self, hexd):
        if self.headers.get("Authorization"):
            self.note(400, " LEAK: Authorization sent to the CDN")
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = os.path.join(a.storage, "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")
        data = open(path, "rb").read()
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start, status = int(rng[6:-1]), 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", '"%s"' % hexd)
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.end_headers()
        self.wfile.write(data[start:])
        self.note(status)

    def handle_any(self):
        m = CDN.match(self.path)
        if a.mode == "redirect" and m and self.command == "GET":
            return self.cdn(m.group(1))
        m = BLOB.match(self.path)
        if a.mode == "redirect" and m and self.command == "GET":
            self.send_response(307)
            self.send_header("Location", "http://localhost:%d/cdn/sha256/%s?sig=test" % (PORT, m.group(1)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self.note(307)
        self.forward()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


class S(ThreadingHTTPServer):
    daemon_threads = True


srv = S(("127.0.0.1", 0), H)
PORT = srv.server_address[1]
with open(a.portfile + ".tmp", "w") as f:
    f.write("%d\n" % PORT)
os.rename(a.portfile + ".tmp", a.portfile)
threading.Timer(a.lifetime, lambda: os._exit(0)).start()
srv.serve_forever()
