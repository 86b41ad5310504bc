#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for the Kubernetes API server, for cdi-source-update-poller's tests: HTTPS on
127.0.0.1, serves one DataImportCron (GET), accepts JSON patches of it (PATCH), and records every
request (method, path, content type, Authorization, body) as one JSON line in --log.

  kube_api.py --cert C --key K --port-file F --log L --object OBJ.json --ns NS --name NAME
"""
import argparse
import json
import sys

from tls_http import QuietHandler, announce_port, serve_tls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--object", required=True)
    ap.add_argument("--ns", required=True)
    ap.add_argument("--name", required=True)
    a = ap.parse_args()
    path = f"/apis/cdi.kubevirt.io/v1beta1/namespaces/{a.ns}/dataimportcrons/{a.name}"

    class H(QuietHandler):
        def record(self, body):
            with open(a.log, "a") as f:
                f.write(json.dumps({"method": self.command, "path": self.path,
                                    "content_type": self.headers.get("Content-Type", ""),
                                    "authorization": self.headers.get("Authorization", ""),
                                    "body": body.decode("utf-8", "replace")}) + "\n")

        def reply_json(self, status, obj):
            self.reply(status, json.dumps(obj).encode(), "application/json")

        def handle_any(self):
            n = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(n) if n else b""
            self.record(body)
            if self.path != path:
                self.reply_json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                      "message": f'dataimportcrons.cdi.kubevirt.io "{self.path.rsplit("/", 1)[-1]}" not found',
                                      "code": 404})
                return
            with open(a.object) as f:
                self.reply_json(200, json.load(f))

        do_GET = handle_any
        do_PATCH = handle_any

    srv = serve_tls(H, a.cert, a.key, threading=True)
    announce_port(srv, a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
