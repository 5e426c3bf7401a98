#!/usr/bin/env python3
"""Calls an `auth = "iam"` gateway route the way the seeds' clients do, and reports what came back.

Usage: python execute_api.py CONFIG_JSON      (or the JSON on standard input: python execute_api.py -)

The configuration:

    {
      "endpoint": "http://127.0.0.1:41234",
      "region": "eu-west-3",
      "path": "/titanic/prod/private/predict",
      "body": {"instances": [...]},              # sent as JSON with POST
      "key": "AKIA...", "secret": "...",         # defaults for every request below
      "requests": [
        {"name": "no signature", "mode": "unsigned"},
        {"name": "aws4auth", "mode": "aws4auth"},
        {"name": "botocore", "mode": "botocore", "secret": "another secret"}
      ]
    }

Each request is a POST of `body` to `endpoint + path`, in one of three modes:

  * `unsigned`: plain `requests.post(url, json=body)`;
  * `aws4auth`: the seed's `requests.post(url, json=body, auth=AWS4Auth(key, secret, region,
    "execute-api"))`;
  * `botocore`: `botocore.auth.SigV4Auth(Credentials(key, secret), "execute-api", region)` on an
    `AWSRequest`, sent with `requests` carrying exactly the headers botocore signed.

A request may override `key`, `secret`, `region`, `path` and `body`. The script prints one JSON
document: `{"results": [{"name", "mode", "status", "json", "text"}, ...]}` where `json` is the
parsed answer (null when it is not JSON) and `text` the raw answer. It exits 0 whenever every
request got an HTTP answer, whatever its status: the caller judges the answers.
"""

import json
import sys
from urllib.parse import urlsplit

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import requests
from requests_aws4auth import AWS4Auth

SERVICE = "execute-api"
TIMEOUT = 60  # seconds, per HTTP request


def send_unsigned(url, body, _key, _secret, _region):
    return requests.post(url, json=body, timeout=TIMEOUT)


def send_aws4auth(url, body, key, secret, region):
    return requests.post(url, json=body, auth=AWS4Auth(key, secret, region, SERVICE), timeout=TIMEOUT)


def send_botocore(url, body, key, secret, region):
    data = json.dumps(body).encode()
    # The Host header is set before signing so that what is sent is exactly what was signed.
    headers = {"Host": urlsplit(url).netloc, "Content-Type": "application/json"}
    req = botocore.awsrequest.AWSRequest(method="POST", url=url, data=data, headers=headers)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), SERVICE, region).add_auth(req)
    prepared = req.prepare()
    send = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
    return requests.post(prepared.url, headers=send, data=data, timeout=TIMEOUT)


MODES = {"unsigned": send_unsigned, "aws4auth": send_aws4auth, "botocore": send_botocore}


def run(config):
    results = []
    endpoint = config["endpoint"].rstrip("/")
    for i, r in enumerate(config["requests"]):
        mode = r["mode"]
        if mode not in MODES:
            raise ValueError(f"requests[{i}].mode: {mode!r} is not one of {sorted(MODES)}")
        url = endpoint + r.get("path", config.get("path", "/"))
        body = r.get("body", config.get("body", {}))
        key = r.get("key", config.get("key", ""))
        secret = r.get("secret", config.get("secret", ""))
        region = r.get("region", config.get("region", "us-east-1"))
        resp = MODES[mode](url, body, key, secret, region)
        try:
            parsed = resp.json()
        except ValueError:
            parsed = None
        results.append(
            {"name": r.get("name", mode), "mode": mode, "status": resp.status_code, "json": parsed, "text": resp.text}
        )
    return {"results": results}


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} CONFIG_JSON | -", file=sys.stderr)
        return 2
    text = sys.stdin.read() if argv[1] == "-" else argv[1]
    print(json.dumps(run(json.loads(text))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
