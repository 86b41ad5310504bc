#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A signature-verifying front for s3rver (which accepts any V4 request with a known key id).

Every request's AWS Signature V4 is recomputed with botocore's own signer (S3SigV4Auth on an
AWSRequest holding the request's method, path, query and exactly the headers it lists as
signed, at its own x-amz-date); a mismatch is answered 403 SignatureDoesNotMatch, an unknown key
403 InvalidAccessKeyId, a date off by more than 15 minutes 403 RequestTimeTooSkewed, a wrong
region in the scope 400 AuthorizationHeaderMalformed, a missing x-amz-content-sha256 400
InvalidRequest — as S3 does. Unsigned requests are refused (403 AccessDenied) unless their
bucket is listed with --public. Accepted requests are proxied to s3rver, streaming, with Range and
conditional headers passed through (the key id rewritten to s3rver's S3RVER). --drop KEY:N cuts the connection once after N body bytes of
that object. Prints "listening on port N"; --tls CERT KEY serves HTTPS.

Usage: s3_verify_front.py --upstream PORT --key AKID:SECRET [--key ...] --region R [--region ...]
       [--public BUCKET] [--drop KEY:N] [--tls CERT KEY] [--log FILE] [--clock-offset S]
"""
import argparse
import datetime
import http.client
import http.server
import re
import socket
import ssl
import sys
import threading
import urllib.parse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(r"AWS4-HMAC-SHA256\s+Credential=([^,]+),\s*SignedHeaders=([^,]+),\s*Signature=([0-9a-f]+)")
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def error_xml(code, message):
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message>"
            "<RequestId>front</RequestId></Error>" % (code, message)).encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--key", action="append", default=[])
    ap.add_argument("--region", action="append", required=True)
    ap.add_argument("--public", action="append", default=[])
    ap.add_argument("--drop", action="append", default=[])
    ap.add_argument("--tls", nargs=2)
    ap.add_argument("--log")
    ap.add_argument("--clock-offset", type=int, default=0, help="seconds this server's clock is off (skew tests)")
    a = ap.parse_args()
    keys = dict(k.split(":", 1) for k in a.key)
    drops = {}
    for d in a.drop:
        k, n = d.rsplit(":", 1)
        drops[k] = int(n)
    lock = threading.Lock()
    logf = open(a.log, "a", buffering=1) if a.log else None

    def log(line):
        if logf:
            logf.write(line + "\n")

    def verify(h):
        """None when the request may pass, else (status, code, message)."""
        auth = h.headers.get("Authorization")
        path, _, query = h.path.partition("?")
        bucket = path.lstrip("/").split("/", 1)[0]
        if auth is None:
            if bucket in a.public and h.command in ("GET", "HEAD"):
                return None
            return 403, "AccessDenied", "Access Denied"
        m = AUTH_RE.fullmatch(auth.strip())
        if not m:
            return 400, "AuthorizationHeaderMalformed", "The authorization header is malformed"
        scope = m.group(1).split("/")
        if len(scope) != 5 or scope[4] != "aws4_request" or scope[3] != "s3":
            return 400, "AuthorizationHeaderMalformed", "The authorization header is malformed"
        akid, day, region = scope[0], scope[1], scope[2]
        if akid not in keys:
            return 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
        if region not in a.region:
            return 400, "AuthorizationHeaderMalformed", "the region '%s' is wrong; expecting '%s'" % (region, a.region[0])
        amz_date = h.headers.get("X-Amz-Date")
        if not amz_date or not amz_date.startswith(day):
            return 403, "AccessDenied", "X-Amz-Date missing or not the credential scope's day"
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=a.clock_offset)
        if abs((now - t).total_seconds()) > 900:
            return 403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."
        if h.headers.get("x-amz-content-sha256") is None:
            return 400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        signed = m.group(2).split(";")
        for must in ("host", "x-amz-date", "x-amz-content-sha256"):
            if must not in signed:
                return 403, "AccessDenied", "header %s must be signed" % must
        headers = {}
        for name in signed:
            v = h.headers.get_all(name)
            if v is None:
                return 403, "SignatureDoesNotMatch", "signed header %s is missing" % name
            headers[name] = ",".join(x.strip() for x in v)
        req = AWSRequest(method=h.command, url="http://%s%s" % (headers["host"], h.path), headers=headers)
        req.context["timestamp"] = amz_date
        signer = S3SigV4Auth(Credentials(akid, keys[akid]), "s3", region)
        canonical = signer.canonical_request(req)
        expected = signer.signature(signer.string_to_sign(req, canonical), req)
        if expected != m.group(3):
            log("mismatch %s %s canonical=%r" % (h.command, h.path, canonical))
            return 403, "SignatureDoesNotMatch", ("The request signature we calculated does not match the signature "
                                                  "you provided. Check your key and signing method.")
        return None

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log("%s %s" % (self.address_string(), fmt % args))

        def reply_error(self, status, code, message):
            body = error_xml(code, message)
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            bad = verify(self)
            m = AUTH_RE.fullmatch((self.headers.get("Authorization") or "").strip())
            log("request %s %s range=%s if-match=%s auth=%s -> %s signed-headers=%s token=%s" % (
                self.command, self.path, self.headers.get("Range"), self.headers.get("If-Match"),
                "signed" if self.headers.get("Authorization") else "anonymous", bad[1] if bad else "pass",
                m.group(2) if m else "-", self.headers.get("x-amz-security-token")))
            if bad:
                self.reply_error(*bad)
                return
            up = http.client.HTTPConnection("127.0.0.1", a.upstream, timeout=60)
            fwd = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            if "Authorization" in fwd:   # verified here; s3rver only knows its own key id
                fwd["Authorization"] = re.sub(r"Credential=[^/]+/", "Credential=S3RVER/", fwd["Authorization"])
            up.request(self.command, self.path, body=body, headers=fwd)
            r = up.getresponse()
            key = urllib.parse.unquote(self.path.partition("?")[0].lstrip("/"))
            cut = None
            with lock:
                if self.command == "GET" and r.status in (200, 206) and key in drops:
                    cut = drops.pop(key)
            data_len = r.getheader("Content-Length")
            payload = None
            if data_len is None:
                payload = r.read()
                data_len = str(len(payload))
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", data_len)
            self.end_headers()
            if self.command == "HEAD":
                up.close()
                return
            sent = 0
            if payload is not None:
                self.wfile.write(payload)
                up.close()
                return
            while True:
                chunk = r.read(256 * 1024)
                if not chunk:
                    break
                if cut is not None and sent + len(chunk) >= cut:
                    self.wfile.write(chunk[: cut - sent])
                    self.wfile.flush()
                    log("dropping %s after %d bytes" % (key, cut))
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    up.close()
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
            up.close()

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = handle_any

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("listening on port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
