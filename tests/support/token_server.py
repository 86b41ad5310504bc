#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""token_server.py WORK [--port N] [--user U --password P] [--anonymous-pull]
                       [--tls-cert C --tls-key K] [--lifetime S]

Minimal Docker "registry token" server (the Bearer flow used by Docker Hub, quay,
ghcr...) for docker-registry's `auth: token:` mode. stdlib only; signs RS256 JWTs
by running `openssl dgst -sha256 -sign`. On first start it creates, in WORK:
  token.key / token.crt   RSA-2048 self-signed signing cert; give token.crt to the
                          registry as `rootcertbundle` (the JWT carries it in x5c)
Flow the registry client must implement:
  GET /v2/ -> 401 WWW-Authenticate: Bearer realm="http://127.0.0.1:T/token",
                  service="cdi-test-registry"[,scope="repository:r:pull"]
  GET realm?service=...&scope=repository:r:pull  (Basic auth if credentials)
      -> {"token": JWT, "access_token": JWT, "expires_in": 300, "issued_at": ...}
  retry with Authorization: Bearer JWT
Prints "PORT <n>" once listening; exits by itself after --lifetime s (default 900).
"""
import argparse, base64, json, os, ssl, subprocess, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

ap = argparse.ArgumentParser()
ap.add_argument("work")
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--portfile")
ap.add_argument("--user")
ap.add_argument("--password")
ap.add_argument("--anonymous-pull", action="store_true")
ap.add_argument("--issuer", default="cdi-test-token-issuer")
ap.add_argument("--service", default="cdi-test-registry")
ap.add_argument("--tls-cert")
ap.add_argument("--tls-key")
ap.add_argument("--lifetime", type=float, default=900)
ap.add_argument("--expires", type=int, default=300)   # token validity, seconds
a = ap.parse_args()
KEY = os.path.join(a.work, "token.key")
CRT = os.path.join(a.work, "token.crt")
if not os.path.exists(CRT):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", KEY, "-out", CRT, "-days", "3650",
                    "-subj", "/CN=cdi test token signer"],
                   check=True, stderr=subprocess.DEVNULL)
der = subprocess.run(["openssl", "x509", "-in", CRT, "-outform", "DER"],
                     check=True, capture_output=True).stdout
X5C = base64.b64encode(der).decode()
COUNT = {"tokens": 0}


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(sub, access):
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [X5C]}
    claims = {"iss": a.issuer, "sub": sub, "aud": a.service, "exp": now + a.expires,
              "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
    signing_input = (b64u(json.dumps(header).encode()) + "." +
                     b64u(json.dumps(claims).encode())).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", KEY],
                         input=signing_input, check=True, capture_output=True).stdout
    return signing_input.decode() + "." + b64u(sig)


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("token-server: " + (fmt % args) + "\n")

    def reply(self, code, obj, extra=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlparse(self.path)
        if u.path != "/token":
            return self.reply(404, {"error": "not found"})
        q = parse_qs(u.query)
        user = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                uname, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                uname, pw = "", None
            if a.user and uname == a.user and pw == a.password:
                user = uname
            else:
                return self.reply(401, {"details": "invalid credentials"},
                                  [("WWW-Authenticate", 'Basic realm="token"')])
        if user is None and a.user and not a.anonymous_pull:
            return self.reply(401, {"details": "credentials required"},
                              [("WWW-Authenticate", 'Basic realm="token"')])
        access = []
        for scope in q.get("scope", []):
            for s in scope.split(" "):
                parts = s.split(":")
                if len(parts) < 3:
                    continue
                typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
                if user is None:            # anonymous: pull only
                    actions = [x for x in actions if x == "pull"]
                access.append({"type": typ, "name": name, "actions": actions})
        tok = make_jwt(user or "", access)
        COUNT["tokens"] += 1
        self.reply(200, {"token": tok, "access_token": tok, "expires_in": a.expires,
                         "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


class S(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = S(("127.0.0.1", a.port), H)
if a.tls_cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.tls_cert, a.tls_key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
port = srv.server_address[1]
if a.portfile:
    with open(a.portfile + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(a.portfile + ".tmp", a.portfile)
print("PORT %d" % port, flush=True)
threading.Timer(a.lifetime, lambda: os._exit(0)).start()
srv.serve_forever()
