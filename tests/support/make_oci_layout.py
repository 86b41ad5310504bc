#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Builds OCI image layouts for the registry tests, reproducibly (mtime 0, sorted JSON), stdlib only.

  make_oci_layout.py image OUT TAG [--arch A] [--os O] [--variant V] [--docker]
                     [--env K=V]... [--label K=V]... --layer SPEC [--layer SPEC]...
      One image (base layer first). SPEC = COMPRESSION:ENTRY[,ENTRY...], COMPRESSION is gzip, zstd
      or none; ENTRY is NAME=FILE (regular file, 0440, uid/gid 107 as KubeVirt's containerDisks),
      NAME= (empty file: whiteouts .wh.X and .wh..wh..opq), NAME/ (directory), NAME->TARGET (symlink).
      --docker writes Docker schema 2 media types instead of OCI ones. --layer-tar COMPRESSION:TARFILE
      adds a layer from a tar made elsewhere (tar(1)), streamed: for multi-GiB benchmark images.
  make_oci_layout.py index OUT TAG SRC_TAG [SRC_TAG...] [--docker]
      An image index (manifest list with --docker) over images already in OUT, with the
      platforms taken from their configs.
OUT/index.json lists every tag (org.opencontainers.image.ref.name); re-using a tag replaces it.
"""
import argparse, gzip, hashlib, io, json, os, subprocess, sys, tarfile

OCI = {"index": "application/vnd.oci.image.index.v1+json",
       "manifest": "application/vnd.oci.image.manifest.v1+json",
       "config": "application/vnd.oci.image.config.v1+json",
       "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
       "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
       "none": "application/vnd.oci.image.layer.v1.tar"}
DOCKER = {"index": "application/vnd.docker.distribution.manifest.list.v2+json",
          "manifest": "application/vnd.docker.distribution.manifest.v2+json",
          "config": "application/vnd.docker.container.image.v1+json",
          "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
          "zstd": "application/vnd.docker.image.rootfs.diff.tar.zstd",
          "none": "application/vnd.docker.image.rootfs.diff.tar"}


def put_blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d


def get_blob(out, digest):
    with open(os.path.join(out, "blobs", "sha256", digest.split(":")[1]), "rb") as f:
        return f.read()


def jdump(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            if "->" in e:
                name, target = e.split("->", 1)
                ti = tarfile.TarInfo(name)
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
                t.addfile(ti)
            elif e.endswith("/"):
                ti = tarfile.TarInfo(e.rstrip("/"))
                ti.type, ti.mode, ti.uid, ti.gid = tarfile.DIRTYPE, 0o555, 107, 107
                t.addfile(ti)
            else:
                name, _, src = e.partition("=")
                data = open(src, "rb").read() if src else b""
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode, ti.uid, ti.gid = len(data), 0o440, 107, 107
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def put_blob_stream(out, cmd, src):
    """Runs cmd (compressor; None = copy) on the file src into a blob, hashing while streaming."""
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    tmp = os.path.join(out, "blobs", "sha256", ".tmp")
    h, n, raw_h = hashlib.sha256(), 0, hashlib.sha256()
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE) if cmd else None
        def feed():
            for chunk in iter(lambda: fin.read(1 << 20), b""):
                raw_h.update(chunk)
                if p:
                    p.stdin.write(chunk)
            if p:
                p.stdin.close()
        import threading
        t = threading.Thread(target=feed)
        t.start()
        if p:
            for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
                h.update(chunk); fout.write(chunk); n += len(chunk)
        t.join()
        if p and p.wait() != 0:
            sys.exit("compressor failed")
    if not cmd:
        h, n = raw_h, os.path.getsize(src)
        import shutil
        shutil.copyfile(src, tmp)
    d = h.hexdigest()
    os.rename(tmp, os.path.join(out, "blobs", "sha256", d))
    return "sha256:" + d, n, "sha256:" + raw_h.hexdigest()


def compress(kind, data):
    if kind == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if kind == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, check=True, capture_output=True).stdout
    return data


def set_tag(out, desc, tag):
    path = os.path.join(out, "index.json")
    idx = json.load(open(path)) if os.path.exists(path) else {"schemaVersion": 2, "manifests": []}
    idx["manifests"] = [m for m in idx["manifests"]
                        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    desc = dict(desc, annotations={"org.opencontainers.image.ref.name": tag})
    idx["manifests"].append(desc)
    with open(path, "w") as f:
        json.dump(idx, f, indent=1, sort_keys=True)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')


def find_tag(out, tag):
    idx = json.load(open(os.path.join(out, "index.json")))
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m
    sys.exit("tag %s not in %s" % (tag, out))


def cmd_image(a):
    mt = DOCKER if a.docker else OCI
    layers, diff_ids = [], []
    for spec in a.layer_tar:
        comp, _, path = spec.partition(":")
        cmd = {"gzip": ["gzip", "-n", "-6", "-c"], "zstd": ["zstd", "-q", "-c", "-3"], "none": None}[comp]
        digest, size, diff_id = put_blob_stream(a.out, cmd, path)
        layers.append({"mediaType": mt[comp], "digest": digest, "size": size})
        diff_ids.append(diff_id)
    for spec in a.layer:
        comp, _, entries = spec.partition(":")
        raw = layer_tar([e for e in entries.split(",") if e])
        blob = compress(comp, raw)
        layers.append({"mediaType": mt[comp], "digest": put_blob(a.out, blob), "size": len(blob)})
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    config = {"architecture": a.arch, "os": a.os, "created": "1970-01-01T00:00:00Z",
              "config": {"Env": a.env, "Labels": dict(kv.split("=", 1) for kv in a.label)},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    if a.variant:
        config["variant"] = a.variant
    cblob = jdump(config)
    manifest = {"schemaVersion": 2, "mediaType": mt["manifest"],
                "config": {"mediaType": mt["config"], "digest": put_blob(a.out, cblob), "size": len(cblob)},
                "layers": layers}
    mblob = jdump(manifest)
    set_tag(a.out, {"mediaType": mt["manifest"], "digest": put_blob(a.out, mblob), "size": len(mblob)}, a.tag)


def cmd_index(a):
    mt = DOCKER if a.docker else OCI
    entries = []
    for src in a.sources:
        d = find_tag(a.out, src)
        m = json.loads(get_blob(a.out, d["digest"]))
        c = json.loads(get_blob(a.out, m["config"]["digest"]))
        plat = {"architecture": c["architecture"], "os": c["os"]}
        if c.get("variant"):
            plat["variant"] = c["variant"]
        entries.append({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"], "platform": plat})
    iblob = jdump({"schemaVersion": 2, "mediaType": mt["index"], "manifests": entries})
    set_tag(a.out, {"mediaType": mt["index"], "digest": put_blob(a.out, iblob), "size": len(iblob)}, a.tag)


ap = argparse.ArgumentParser()
sub = ap.add_subparsers(dest="cmd", required=True)
p = sub.add_parser("image")
p.add_argument("out"); p.add_argument("tag")
p.add_argument("--arch", default="amd64"); p.add_argument("--os", default="linux"); p.add_argument("--variant")
p.add_argument("--docker", action="store_true")
p.add_argument("--env", action="append", default=[]); p.add_argument("--label", action="append", default=[])
p.add_argument("--layer", action="append", default=[])
p.add_argument("--layer-tar", action="append", default=[])
p = sub.add_parser("index")
p.add_argument("out"); p.add_argument("tag"); p.add_argument("sources", nargs="+")
p.add_argument("--docker", action="store_true")
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
cmd_image(a) if a.cmd == "image" else cmd_index(a)
