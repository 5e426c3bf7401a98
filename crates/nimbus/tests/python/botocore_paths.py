#!/usr/bin/env python3
"""Paths and queries that botocore signs in its own way, against nimbus's admin API.

Usage: python botocore_paths.py ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY

Requests are signed with botocore.auth.SigV4Auth (service "nimbus", region "us-east-1") and
sent with botocore's own URLLib3Session, exactly as botocore clients send them:

  * a query with an empty key (`?=null`), which botocore signs as `=null`;
  * an object key with a `..` segment sent percent-encoded (`a/%2e%2e/b`), which botocore
    signs with lower-case escapes and urllib3 may send upper-cased.

Each must be accepted: not 403 SignatureDoesNotMatch. Each check prints "ok   <name>" or
"FAIL <name>: <details>"; the last line is "N passed, M failed", and the exit status is 1 when
any check failed. Only the standard library and botocore are used.
"""

import json
import sys

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.httpsession

SERVICE = "nimbus"
REGION = "us-east-1"
API = "/_nimbus/v1"
BUCKET = "botocore"


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, cond, details=""):
        if cond:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}: {details or 'condition was false'}", flush=True)
        return bool(cond)


class Client:
    def __init__(self, endpoint, key, secret):
        self.endpoint = endpoint.rstrip("/")
        creds = botocore.credentials.Credentials(key, secret)
        self.signer = botocore.auth.SigV4Auth(creds, SERVICE, REGION)
        self.session = botocore.httpsession.URLLib3Session()

    def send(self, method, path_and_query, body=b""):
        """Signs and sends; returns (status, text). `path_and_query` is sent as written."""
        req = botocore.awsrequest.AWSRequest(method=method, url=self.endpoint + path_and_query, data=body)
        self.signer.add_auth(req)
        resp = self.session.send(req.prepare())
        return resp.status_code, resp.content.decode("utf-8", "replace")


def describe(status, text):
    return f"HTTP {status}: {text[:300]}"


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    endpoint, key, secret = argv[1:]
    c = Client(endpoint, key, secret)
    r = Report()

    status, text = c.send("GET", f"{API}/model-groups?=null")
    r.check("an empty query key (?=null) is accepted", status == 200, describe(status, text))

    status, text = c.send("GET", f"{API}/model-groups?=null&a=1")
    r.check("an empty query key among others is accepted", status == 200, describe(status, text))

    status, text = c.send("PUT", f"{API}/buckets/{BUCKET}")
    r.check("the bucket is made", status == 201, describe(status, text))

    body = b"stored under a key with a dot-dot segment"
    for escape in ("%2e%2e", "%2E%2E"):
        path = f"{API}/buckets/{BUCKET}/objects/a/{escape}/b"
        status, text = c.send("PUT", path, body)
        r.check(f"PUT .../objects/a/{escape}/b is accepted", status == 200, describe(status, text))
        if status == 200:
            key = json.loads(text).get("key")
            r.check(f"PUT .../objects/a/{escape}/b stores key a/../b", key == "a/../b", f"key {key!r}")
        status, text = c.send("GET", path)
        r.check(f"GET .../objects/a/{escape}/b returns the bytes", status == 200 and text == body.decode(),
                describe(status, text))

    status, text = c.send("GET", f"{API}/buckets/{BUCKET}/objects?=null&prefix=a%2F")
    r.check("a listing with an empty query key is accepted", status == 200, describe(status, text))
    if status == 200:
        keys = [o["key"] for o in json.loads(text)["objects"]]
        r.check("the listing shows the dotted key", keys == ["a/../b"], repr(keys))

    # A path botocore would sign normalised while the server routes it as sent is refused
    # (400 InvalidPath), never served as another path.
    status, text = c.send("GET", f"{API}/buckets/{BUCKET}/objects/a/../b")
    r.check("a literal .. segment is refused with InvalidPath", status == 400 and "InvalidPath" in text,
            describe(status, text))

    print(f"{r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
