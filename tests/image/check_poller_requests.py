#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Asserts the requests cdi-source-update-poller sent to tests/support/kube_api.py are CDI's: one GET of
the DataImportCron, then one JSON patch adding lastCronTime and sourceDesiredDigest, with the
service-account Bearer token.   check_poller_requests.py API_LOG DIGEST"""
import json, re, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
digest = sys.argv[2]
path = "/apis/cdi.kubevirt.io/v1beta1/namespaces/golden-images/dataimportcrons/fedora-cron"
for r in reqs: print(r, file=sys.stderr)
patches = [r for r in reqs if r["method"] == "PATCH"]
assert len(patches) == 1, "expected one PATCH, got %d" % len(patches)
p = patches[0]
assert p["path"] == path, p["path"]
assert p["authorization"] == "Bearer eyJhbGciOiJSUzI1NiJ9.test-token.for-cdi-cronjob", p["authorization"]
assert p["content_type"] == "application/json-patch+json", p["content_type"]
ops = json.loads(p["body"])
assert len(ops) == 2, ops
assert ops[0]["op"] == "add" and ops[0]["path"] == "/metadata/annotations/cdi.kubevirt.io~1storage.import.lastCronTime", ops[0]
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", ops[0]["value"]), ops[0]
assert ops[1] == {"op": "add", "path": "/metadata/annotations/cdi.kubevirt.io~1storage.import.sourceDesiredDigest",
                  "value": digest}, ops[1]
gets = [r for r in reqs if r["method"] == "GET"]
assert gets and gets[0]["path"] == path and gets[0]["authorization"] == p["authorization"], gets
