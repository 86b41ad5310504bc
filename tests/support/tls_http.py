# SPDX-License-Identifier: Apache-2.0
"""The HTTPS server skeleton the stand-in servers share (clone_receiver.py, kube_api.py): a quiet
HTTP/1.1 handler base with a reply helper, a server on 127.0.0.1 with a kernel-chosen port wrapped
in TLS (optionally requiring a client certificate from a CA), and the two ways the e2e scripts
learn the port: a "listening on port N" line on stdout, or a port file written atomically.
"""
import http.server
import os
import ssl


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1; no per-request log lines on stderr."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", content_type=None):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve_tls(handler, cert, key, client_ca=None, threading=False):
    """An HTTPS server for `handler` on 127.0.0.1, kernel-chosen port, TLS 1.2 or later. With
    client_ca a client certificate chained to it is required at the handshake (mutual TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    cls = http.server.ThreadingHTTPServer if threading else http.server.HTTPServer
    srv = cls(("127.0.0.1", 0), handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    return srv


def port_of(srv):
    return srv.server_address[1]


def announce_port(srv, port_file=None):
    """Tells the test where the server listens: written to port_file (renamed into place, so a
    reader never sees it half written), else printed as "listening on port N"."""
    port = port_of(srv)
    if port_file:
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(port_file + ".tmp", port_file)
    else:
        print("listening on port %d" % port, flush=True)


def serve_until_interrupted(srv):
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
