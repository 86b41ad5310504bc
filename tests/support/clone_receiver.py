#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A minimal stand-in for a CDI upload server's clone route, for tests/e2e/test_cloner.sh:
HTTPS on 127.0.0.1 with a required client certificate (mutual TLS), POST /v1beta1/upload with a
chunked body, the body written as received (still snappy-framed) to OUT, the request's
x-cdi-content-type to OUT.type, then 200. One line per event on stdout ("listening on port N",
"request ...", "done N").

  clone_receiver.py --cert C --key K --ca CA --out OUT [--rate BYTES_PER_SEC] [--status N]
"""
import argparse
import sys
import time

from tls_http import QuietHandler, announce_port, serve_tls, serve_until_interrupted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rate", type=int, default=0, help="read at most this many bytes per second")
    ap.add_argument("--status", type=int, default=200)
    a = ap.parse_args()

    def log(msg):
        print(msg, flush=True)

    class Handler(QuietHandler):
        def do_POST(self):
            cn = dict(x[0] for x in self.connection.getpeercert()["subject"]).get("commonName", "")
            log("request %s %s cn=%s te=%s" % (self.path, self.headers.get("x-cdi-content-type"), cn,
                                               self.headers.get("Transfer-Encoding")))
            total = 0
            start = time.monotonic()
            with open(a.out, "wb") as out:
                while True:
                    line = self.rfile.readline(1024)
                    size = int(line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    left = size
                    while left:
                        n = min(left, 16384)
                        data = self.rfile.read(n)
                        if not data:
                            raise ConnectionError("body cut")
                        out.write(data)
                        left -= len(data)
                        total += len(data)
                        if a.rate:
                            ahead = total / a.rate - (time.monotonic() - start)
                            if ahead > 0:
                                time.sleep(ahead)
                    self.rfile.readline(16)
            with open(a.out + ".type", "w") as f:
                f.write(self.headers.get("x-cdi-content-type") or "")
            self.reply(a.status, b"ok\n")
            log("done %d" % total)

    srv = serve_tls(Handler, a.cert, a.key, client_ca=a.ca)
    announce_port(srv)
    serve_until_interrupted(srv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
