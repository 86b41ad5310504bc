#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for the two Kubernetes API calls cdi-source-update-poller makes (CDI's
tools/cdi-source-update-poller: GET the DataImportCron, then a JSON patch of its annotations).
HTTPS on 127.0.0.1 with the given certificate; every request is appended to LOG as one JSON line
{method, path, query, authorization, content_type, body}. Stdlib only.

  kube_api_standin.py CERT KEY LOG --portfile FILE [--lifetime SECONDS]
"""
import argparse, json, ssl, sys, threading, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("cert"); ap.add_argument("key"); ap.add_argument("log")
ap.add_argument("--portfile", required=True)
ap.add_argument("--lifetime", type=float, default=600)
a = ap.parse_args()
lock = threading.Lock()
PREFIX = "/apis/cdi.kubevirt.io/v1beta1/namespaces/"


def cron_object(ns, name):
    return {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataImportCron",
            "metadata": {"name": name, "namespace": ns, "uid": "cron-uid-1", "resourceVersion": "1",
                         "annotations": {"cdi.kubevirt.io/storage.import.sourceDesiredDigest": "sha256:" + "0" * 64}},
            "spec": {"schedule": "* * * * *", "managedDataSource": name,
                     "template": {"spec": {"source": {"registry": {"url": "docker://x"}}}}}}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        with lock, open(a.log, "a") as f:
            f.write(json.dumps({"method": self.command, "path": u.path, "query": u.query,
                                "authorization": self.headers.get("Authorization", ""),
                                "content_type": self.headers.get("Content-Type", ""),
                                "body": body}) + "\n")
        parts = u.path[len(PREFIX):].split("/") if u.path.startswith(PREFIX) else []
        if len(parts) == 3 and parts[1] == "dataimportcrons" and self.command in ("GET", "PATCH"):
            self.reply(200, cron_object(parts[0], parts[2]))
        else:
            self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})

    def reply(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = handle_any


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(a.cert, a.key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(a.portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.replace(a.portfile + ".tmp", a.portfile)
threading.Timer(a.lifetime, srv.shutdown).start()
srv.serve_forever()
