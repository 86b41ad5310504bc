#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""oci_push.py LAYOUT TAG REGISTRY_URL REPO[:DESTTAG] [--user U --password P] [--cacert CA]

Pushes one tag of an OCI image layout to a v2 registry EXACTLY as stored (no
recompression, no blob-info cache, any media types, uncompressed layers...).
stdlib only. Handles 401 Basic and Bearer (token) challenges.
Example: oci_push.py oci v1 http://127.0.0.1:5000 containerdisk/x:v1
(skopeo 1.9 always (re)compresses layers for docker:// destinations and may reuse
 a previously pushed variant from its blob-info cache; this script does not.)
"""
import argparse, base64, re, json, os, ssl, sys, urllib.error, urllib.parse, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("layout"); ap.add_argument("tag"); ap.add_argument("registry"); ap.add_argument("repo")
ap.add_argument("--user"); ap.add_argument("--password"); ap.add_argument("--cacert")
a = ap.parse_args()
repo, _, dtag = a.repo.partition(":")
dtag = dtag or a.tag
ctx = ssl.create_default_context(cafile=a.cacert) if a.cacert else None
AUTH = {"hdr": None}


def bearer(chal, scope_hint):
    params = dict(re.findall(r'(\w+)="([^"]*)"', chal))   # quoted values may hold commas
    q = {"service": params.get("service", "")}
    q["scope"] = "repository:%s:pull,push" % repo
    req = urllib.request.Request(params["realm"] + "?" + urllib.parse.urlencode(q))
    if a.user:
        req.add_header("Authorization", "Basic " + base64.b64encode(
            ("%s:%s" % (a.user, a.password)).encode()).decode())
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            j = json.load(r)
    except urllib.error.HTTPError as e:
        raise SystemExit("token request to %s -> %d" % (params["realm"], e.code))
    return "Bearer " + (j.get("token") or j["access_token"])


def call(method, url, data=None, headers=None, ok=(200, 201, 202, 204)):
    # A 401 fetches a new token and tries again: a few times, because a test registry may hand
    # out tokens good for under a second (test_registry.sh's renewal case), which a loaded machine
    # can let expire between the token request and the next call.
    tries = 5
    for attempt in range(tries):
        req = urllib.request.Request(url if url.startswith("http") else a.registry + url,
                                     data=data, method=method, headers=dict(headers or {}))
        if AUTH["hdr"]:
            req.add_header("Authorization", AUTH["hdr"])
        try:
            with urllib.request.urlopen(req, context=ctx) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            if e.code == 401 and attempt < tries - 1:
                chal = e.headers.get("WWW-Authenticate", "")
                if chal.startswith("Bearer "):
                    AUTH["hdr"] = bearer(chal, repo)
                else:
                    AUTH["hdr"] = "Basic " + base64.b64encode(
                        ("%s:%s" % (a.user, a.password)).encode()).decode()
                continue
            if e.code in ok:
                return e.code, dict(e.headers), e.read()
            raise SystemExit("%s %s -> %d %s" % (method, url, e.code, e.read()[:300]))


def blob_path(d):
    alg, hexd = d.split(":")
    return os.path.join(a.layout, "blobs", alg, hexd)


def push_blob(desc):
    d = desc["digest"]
    st, _, _ = call("HEAD", "/v2/%s/blobs/%s" % (repo, d), ok=(200, 404))
    if st == 200:
        return
    st, h, _ = call("POST", "/v2/%s/blobs/uploads/" % repo, data=b"")
    loc = h["Location"]
    if not loc.startswith("http"):
        loc = a.registry + loc
    sep = "&" if "?" in loc else "?"
    with open(blob_path(d), "rb") as f:
        body = f.read()
    call("PUT", loc + sep + "digest=" + urllib.parse.quote(d), data=body,
         headers={"Content-Type": "application/octet-stream"})


def push_manifest(desc, ref):
    with open(blob_path(desc["digest"]), "rb") as f:
        body = f.read()
    m = json.loads(body)
    mt = desc.get("mediaType") or m.get("mediaType")
    for child in m.get("manifests", []):        # index: children first
        push_manifest(child, child["digest"])
    if "config" in m:
        push_blob(m["config"])
    for layer in m.get("layers", []):
        push_blob(layer)
    call("PUT", "/v2/%s/manifests/%s" % (repo, ref), data=body, headers={"Content-Type": mt})


with open(os.path.join(a.layout, "index.json")) as f:
    idx = json.load(f)
top = [m for m in idx["manifests"]
       if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == a.tag]
if not top:
    sys.exit("tag %s not in %s/index.json" % (a.tag, a.layout))
push_manifest(top[0], dtag)
print("pushed %s -> %s/%s:%s (%s)" % (a.tag, a.registry, repo, dtag, top[0]["digest"]))
