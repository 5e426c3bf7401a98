#!/usr/bin/env python3
"""SigV4-signs one POST for bench/auth.sh with requests-aws4auth (service execute-api, the
body's SHA-256 in x-amz-content-sha256) and writes the headers wrk replays, one "Name: value"
a line: every header the signature covers (host, content-type, x-amz-date,
x-amz-content-sha256) and authorization. The server accepts a replayed signature for 15
minutes (as AWS), so bench/auth.sh signs once per round. Before writing, the signed request
is sent once and must get 200 with predictions.

Usage: auth-sign.py URL BODY_FILE REGION OUT_FILE
       env: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
Needs requests and requests-aws4auth (the venv of scripts/python-env.sh has both).
"""
import os
import sys
from urllib.parse import urlparse

import requests
from requests_aws4auth import AWS4Auth

url, body_file, region, out = sys.argv[1:5]
with open(body_file, "rb") as f:
    body = f.read()
auth = AWS4Auth(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], region, "execute-api")
prepared = requests.Request("POST", url, data=body, headers={"Content-Type": "application/json"}).prepare()
prepared = auth(prepared)
# requests-aws4auth signs the Host that http.client will send (host:port for a port that is
# not the scheme's default): wrk must send the same.
host = AWS4Auth.get_host_header(url)
signed = prepared.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
headers = {"Host": host}
for name in signed:
    if name != "host":
        headers[name] = prepared.headers[name]
headers["Authorization"] = prepared.headers["Authorization"]

with requests.Session() as s:
    r = s.post(url, data=body, headers=headers)
if r.status_code != 200 or b"predictions" not in r.content:
    sys.exit(f"auth-sign: the signed request got {r.status_code}: {r.text[:300]}")
with open(out, "w") as f:
    for k, v in headers.items():
        f.write(f"{k}: {v}\n")
print(f"signed {urlparse(url).path} ({';'.join(signed)}), checked: 200", file=sys.stderr)
