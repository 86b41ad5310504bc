#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""gcs_standin.py ROOT --portfile F [--account EMAIL=PUBKEY.pem]... [--tls CERT KEY] [options]

A stand-in for Google Cloud Storage and Google's OAuth2 token endpoint (python3 stdlib +
python3-cryptography + python3-crc32c), for the GCS source's e2e tests. Objects are the files
ROOT/BUCKET/OBJECT. Binds 127.0.0.1 on a kernel-chosen port, writes the port to --portfile, exits
after --lifetime seconds. Every request is logged on stderr as
  gcs-standin: METHOD PATH?QUERY range=RANGE if-range=V auth=none|token|bad status=N

Routes:
  POST /token                        JWT-bearer grant (RFC 7523): the assertion's RS256 signature is
                                     VERIFIED with the --account public key of its "iss"; aud must
                                     be this server's /token URL, scope a devstorage scope, iat/exp
                                     current and at most an hour apart. Else 400 invalid_grant.
                                     Grants {"access_token", "expires_in": --token-lifetime}.
  GET /storage/v1/b/B/o/O            JSON API metadata: generation, size, crc32c, md5Hash (strings)
  GET /B/O[?generation=N]            XML API media: Range (bytes=A- / A-B), If-Range, x-goog-generation,
                                     x-goog-hash (crc32c=…,md5=…), ETag, Accept-Ranges
Buckets whose name starts with "public" are readable anonymously; all others need
"Authorization: Bearer TOKEN" with a token this server granted and not expired (401 otherwise);
buckets starting with "denied" answer 403 to every token. Faults:
  --corrupt B/O      XML GETs of B/O serve the object with one byte flipped (metadata unchanged)
  --drop B/O=N       the first XML GET of B/O sends its headers, N bytes, then closes the connection
"""
import argparse
import base64
import hashlib
import json
import os
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import crc32c
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ap = argparse.ArgumentParser()
ap.add_argument("root")
ap.add_argument("--portfile", required=True)
ap.add_argument("--account", action="append", default=[])
ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
ap.add_argument("--token-lifetime", type=int, default=3600)
ap.add_argument("--corrupt", action="append", default=[])
ap.add_argument("--drop", action="append", default=[])
ap.add_argument("--lifetime", type=float, default=900)
args = ap.parse_args()
ROOT = os.path.realpath(args.root)
ACCOUNTS = {}
for a in args.account:
    email, path = a.split("=", 1)
    with open(path, "rb") as f:
        ACCOUNTS[email] = serialization.load_pem_public_key(f.read())
DROPS = {}
for d in args.drop:
    name, n = d.rsplit("=", 1)
    DROPS[name] = int(n)
TOKENS = {}   # token -> expiry (time.time())
LOCK = threading.Lock()
SCOPES = {"https://www.googleapis.com/auth/devstorage.read_only",
          "https://www.googleapis.com/auth/devstorage.read_write",
          "https://www.googleapis.com/auth/devstorage.full_control",
          "https://www.googleapis.com/auth/cloud-platform"}


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def object_facts(path):
    st = os.stat(path)
    c = 0
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            c = crc32c.crc32c(b, c)
            md5.update(b)
    return {
        "generation": str(st.st_mtime_ns // 1000),
        "size": st.st_size,
        "crc32c": base64.b64encode(c.to_bytes(4, "big")).decode(),
        "md5": base64.b64encode(md5.digest()).decode(),
        "etag": '"' + md5.hexdigest() + '"',
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def note(self, status, auth):
        sys.stderr.write("gcs-standin: %s %s range=%s if-range=%s auth=%s status=%d\n" % (
            self.command, self.path, self.headers.get("Range", "-"), self.headers.get("If-Range", "-"), auth, status))
        sys.stderr.flush()

    def send(self, status, body, ctype, auth, headers=()):
        self.note(status, auth)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def json_error(self, status, message, auth):
        body = json.dumps({"error": {"code": status, "message": message,
                                     "errors": [{"message": message, "reason": "x"}]}}).encode()
        self.send(status, body, "application/json; charset=UTF-8", auth)

    def xml_error(self, status, code, message, auth):
        body = ("<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code><Message>%s</Message></Error>"
                % (code, message)).encode()
        self.send(status, body, "application/xml; charset=UTF-8", auth)

    # --- OAuth2 ---------------------------------------------------------------------------------
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode()
        if urllib.parse.urlsplit(self.path).path != "/token":
            return self.json_error(404, "Not Found", "none")
        form = urllib.parse.parse_qs(body)

        def refuse(desc):
            b = json.dumps({"error": "invalid_grant", "error_description": desc}).encode()
            self.send(400, b, "application/json", "none")

        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            b = json.dumps({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}).encode()
            return self.send(400, b, "application/json", "none")
        assertion = form.get("assertion", [""])[0]
        parts = assertion.split(".")
        if len(parts) != 3:
            return refuse("Invalid JWT: not three parts")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except Exception:
            return refuse("Invalid JWT: not base64url JSON")
        if header.get("alg") != "RS256":
            return refuse("Invalid JWT: alg must be RS256")
        key = ACCOUNTS.get(claims.get("iss"))
        if key is None:
            return refuse("Invalid JWT Signature.")   # Google's answer for an unknown account
        try:
            key.verify(sig, (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return refuse("Invalid JWT Signature.")
        scheme = "https" if args.tls else "http"
        if claims.get("aud") != "%s://127.0.0.1:%d/token" % (scheme, self.server.server_address[1]):
            return refuse("Invalid JWT: audience is not the token endpoint")
        if not set(str(claims.get("scope", "")).split()) & SCOPES:
            return refuse("Invalid JWT: no storage scope")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or exp <= iat or exp - iat > 3600:
            return refuse("Invalid JWT: iat/exp")
        if iat > now + 60 or exp < now:
            return refuse("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                          "Check your iat and exp values in the JWT claim.")
        token = "ya29.standin-" + secrets.token_urlsafe(24)
        with LOCK:
            TOKENS[token] = now + args.token_lifetime
        b = json.dumps({"access_token": token, "expires_in": args.token_lifetime, "token_type": "Bearer"}).encode()
        self.send(200, b, "application/json", "none")

    # --- storage --------------------------------------------------------------------------------
    def auth_state(self):
        h = self.headers.get("Authorization")
        if not h:
            return "none"
        if not h.startswith("Bearer "):
            return "bad"
        with LOCK:
            exp = TOKENS.get(h[7:])
        return "token" if exp is not None and exp > time.time() else "bad"

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(u.query)
        auth = self.auth_state()
        if u.path.startswith("/storage/v1/b/"):
            rest = u.path[len("/storage/v1/b/"):]
            bucket, sep, obj = rest.partition("/o/")
            bucket, obj = urllib.parse.unquote(bucket), urllib.parse.unquote(obj)
            api = "json"
        else:
            bucket, _, obj = u.path[1:].partition("/")
            bucket, obj = urllib.parse.unquote(bucket), urllib.parse.unquote(obj)
            api = "xml"
        err = self.json_error if api == "json" else None
        bdir = os.path.join(ROOT, bucket)
        if not bucket.startswith("public"):
            if auth == "none":
                if api == "json":
                    return err(401, "Anonymous caller does not have storage.objects.get access to the Google Cloud "
                                    "Storage object.", auth)
                return self.xml_error(401, "AccessDenied", "Anonymous caller does not have storage.objects.get access", auth)
            if auth == "bad":
                if api == "json":
                    return err(401, "Invalid Credentials", auth)
                return self.xml_error(401, "AuthenticationRequired", "Invalid Credentials", auth)
            if bucket.startswith("denied"):
                if api == "json":
                    return err(403, "caller does not have storage.objects.get access to the Google Cloud Storage object. "
                                    "Permission 'storage.objects.get' denied on resource (or it may not exist).", auth)
                return self.xml_error(403, "AccessDenied", "Access denied.", auth)
        if not os.path.isdir(bdir):
            if api == "json":
                return err(404, "The specified bucket does not exist.", auth)
            return self.xml_error(404, "NoSuchBucket", "The specified bucket does not exist.", auth)
        path = os.path.realpath(os.path.join(bdir, obj))
        if not path.startswith(bdir + "/") or not os.path.isfile(path):
            if api == "json":
                return err(404, "No such object: %s/%s" % (bucket, obj), auth)
            return self.xml_error(404, "NoSuchKey", "The specified key does not exist.", auth)
        facts = object_facts(path)
        if "generation" in query and query["generation"] != [facts["generation"]]:
            if api == "json":
                return err(404, "No such object: %s/%s" % (bucket, obj), auth)
            return self.xml_error(404, "NoSuchKey", "The specified key does not exist.", auth)
        if api == "json":
            meta = {"kind": "storage#object", "id": "%s/%s/%s" % (bucket, obj, facts["generation"]),
                    "name": obj, "bucket": bucket, "generation": facts["generation"], "metageneration": "1",
                    "size": str(facts["size"]), "crc32c": facts["crc32c"], "md5Hash": facts["md5"],
                    "etag": "CAE="}
            fields = query.get("fields", [""])[0]
            if fields:
                meta = {k: v for k, v in meta.items() if k in fields.split(",")}
            return self.send(200, json.dumps(meta).encode(), "application/json; charset=UTF-8", auth)
        self.media(bucket + "/" + obj, path, facts, auth)

    def media(self, name, path, facts, auth):
        size = facts["size"]
        first, last = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and (if_range is None or if_range == facts["etag"]):
            spec = rng.replace("bytes=", "")
            a, _, b = spec.partition("-")
            first = int(a)
            if b:
                last = min(int(b), size - 1)
            if first >= size:
                return self.xml_error(416, "InvalidRange", "The requested range cannot be satisfied.", auth)
            status = 206
        with open(path, "rb") as f:
            f.seek(first)
            data = f.read(last - first + 1)
        if name in args.corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        drop = None
        with LOCK:
            if name in DROPS:
                drop = DROPS.pop(name)
        self.note(status, auth)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", facts["etag"])
        self.send_header("x-goog-generation", facts["generation"])
        self.send_header("x-goog-metageneration", "1")
        self.send_header("x-goog-stored-content-length", str(size))
        self.send_header("x-goog-hash", "crc32c=%s" % facts["crc32c"])
        self.send_header("x-goog-hash", "md5=%s" % facts["md5"])
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        self.end_headers()
        if drop is not None:
            self.wfile.write(data[:drop])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
if args.tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.tls[0], args.tls[1])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
port = srv.server_address[1]
tmp = args.portfile + ".tmp"
with open(tmp, "w") as f:
    f.write(str(port))
os.rename(tmp, args.portfile)
threading.Timer(args.lifetime, lambda: os._exit(0)).start()
srv.serve_forever()
