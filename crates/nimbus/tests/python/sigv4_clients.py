#!/usr/bin/env python3
"""Client-compatibility checks: real AWS SigV4 clients against nimbus's admin API.

Usage: python sigv4_clients.py ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY
       e.g. python sigv4_clients.py http://127.0.0.1:41234 AKIA... secret...

Two independent signers are exercised against /_nimbus/v1/ (service "nimbus", region
"us-east-1"):

  * botocore's SigV4Auth on an AWSRequest, sent with `requests` using exactly the headers
    botocore signed;
  * requests-aws4auth's AWS4Auth, plugged into `requests` as its auth hook.

Each check prints "ok   <name>" or "FAIL <name>: <details>"; the last line is
"N passed, M failed" and the exit status is 1 when any check failed.

Only the standard library, botocore, requests and requests_aws4auth are used.
"""

import contextlib
import datetime
import json
import os
import re
import sys
import types
import uuid
from unittest import mock
from urllib.parse import quote, urlsplit

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import requests
from requests_aws4auth import AWS4Auth

SERVICE = "nimbus"
REGION = "us-east-1"
API = "/_nimbus/v1"
TIMEOUT = 30  # seconds, per HTTP request
CLOCK_SKEW = datetime.timedelta(minutes=20)  # the server allows 15


# --------------------------------------------------------------------------------------
# Reporting


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, cond, details=""):
        """Records one check; prints `ok   name` or `FAIL name: details`. Returns cond."""
        if cond:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}: {details or 'condition was false'}", flush=True)
        return bool(cond)

    def section(self, name, fn, *args):
        """Runs a group of checks; an unexpected exception fails the group, not the run."""
        try:
            fn(self, *args)
        except Exception as e:  # noqa: BLE001 - any error is a failed check here
            self.check(f"{name}: ran without an unexpected error", False, f"{type(e).__name__}: {e}")


def body_json(resp):
    """The response body as JSON, or None when it is not JSON."""
    try:
        return resp.json()
    except ValueError:
        return None


def describe(resp):
    """`HTTP <status>: <body>` with the body cut short, for failure details."""
    text = resp.text
    if len(text) > 300:
        text = text[:300] + "..."
    return f"HTTP {resp.status_code}: {text!r}"


def message_of(resp):
    j = body_json(resp)
    if isinstance(j, dict) and isinstance(j.get("message"), str):
        return j["message"]
    return ""


def unique(prefix):
    """A fresh name valid both as a model group and as a bucket (lowercase, digits, '-')."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def object_path(bucket, key):
    """The API path of an object, each key segment percent-encoded ('/' kept as separator)."""
    return f"{API}/buckets/{bucket}/objects/{quote(key, safe='/')}"


# --------------------------------------------------------------------------------------
# botocore


def _shifted_now(delta):
    def now(remove_tzinfo=True):
        t = datetime.datetime.now(datetime.timezone.utc) + delta
        return t.replace(tzinfo=None) if remove_tzinfo else t

    return now


@contextlib.contextmanager
def botocore_clock(delta):
    """Makes botocore's signer believe the time is now + delta.

    Current botocore reads the clock through botocore.auth.get_current_datetime; older
    releases called datetime.datetime.utcnow() on the module botocore.auth imported.
    """
    if hasattr(botocore.auth, "get_current_datetime"):
        with mock.patch.object(botocore.auth, "get_current_datetime", _shifted_now(delta)):
            yield
        return

    real = datetime.datetime
    fake_now = _shifted_now(delta)

    class ShiftedDatetime(real):
        @classmethod
        def utcnow(cls):
            return fake_now(remove_tzinfo=True)

        @classmethod
        def now(cls, tz=None):
            t = fake_now(remove_tzinfo=False)
            return t.astimezone(tz) if tz else t.replace(tzinfo=None)

    fake_module = types.SimpleNamespace(**{n: getattr(datetime, n) for n in dir(datetime) if not n.startswith("__")})
    fake_module.datetime = ShiftedDatetime
    with mock.patch.object(botocore.auth, "datetime", fake_module):
        yield


class Botocore:
    """Signs with botocore.auth.SigV4Auth and sends with requests."""

    def __init__(self, endpoint, key, secret):
        self.endpoint = endpoint
        self.signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), SERVICE, REGION)

    def sign(self, method, path, body=b"", headers=None, clock_delta=None):
        """Signs a request and returns (url, headers to send).

        The Host header is set explicitly before signing: botocore would otherwise sign a
        host derived from the URL without putting it in the headers, and we want to send
        precisely what was signed.
        """
        url = self.endpoint + path
        hdrs = {"Host": urlsplit(url).netloc.rsplit("@", 1)[-1]}
        hdrs.update(headers or {})
        req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=hdrs)
        if clock_delta is None:
            self.signer.add_auth(req)
        else:
            with botocore_clock(clock_delta):
                self.signer.add_auth(req)
        prepared = req.prepare()
        # Content-Length is not signed; requests computes it from the body actually sent
        # (which differs from the signed one in the tampering check).
        send = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
        return prepared.url, send

    def request(self, method, path, body=b"", headers=None, send_body=None, clock_delta=None):
        """Signs `body`, then sends `send_body` (default: the same body)."""
        url, hdrs = self.sign(method, path, body, headers, clock_delta)
        data = body if send_body is None else send_body
        return requests.request(method, url, headers=hdrs, data=data or None, timeout=TIMEOUT)

    def json(self, method, path, obj, send_obj=None):
        body = json.dumps(obj).encode()
        send = None if send_obj is None else json.dumps(send_obj).encode()
        return self.request(method, path, body, {"Content-Type": "application/json"}, send_body=send)


def botocore_checks(r, endpoint, key, secret):
    c = Botocore(endpoint, key, secret)

    resp = c.request("GET", f"{API}/whoami")
    j = body_json(resp) or {}
    r.check("botocore: GET whoami is 200", resp.status_code == 200, describe(resp))
    r.check(
        "botocore: whoami names the signing key",
        j.get("access_key_id") == key and all(k in j for k in ("user", "arn", "is_admin", "region", "account")),
        describe(resp),
    )

    group = unique("pycompat-boto")
    resp = c.json("POST", f"{API}/model-groups", {"name": group, "description": "botocore SigV4 check"})
    r.check("botocore: POST model-groups is 201", resp.status_code == 201, describe(resp))
    r.check("botocore: created group has the name sent", (body_json(resp) or {}).get("name") == group, describe(resp))

    resp = c.json("POST", f"{API}/model-groups", {"name": group, "description": "again"})
    r.check(
        "botocore: second create of the group is 409 ModelGroupExists",
        resp.status_code == 409 and (body_json(resp) or {}).get("code") == "ModelGroupExists",
        describe(resp),
    )

    resp = c.request("GET", f"{API}/model-groups/{group}")
    r.check("botocore: GET the created group is 200", resp.status_code == 200, describe(resp))

    # botocore takes the query string from the URL as is, so it must already be in canonical
    # form: '%20' for a space (not '+'), upper-case hex.
    missing = unique("pycompat-none")
    query = f"prefix={quote('dir/a b', safe='')}&limit=5"  # prefix=dir%2Fa%20b
    resp = c.request("GET", f"{API}/buckets/{missing}/objects?{query}")
    r.check(
        "botocore: query with an encoded space and slash is accepted (not 403)",
        resp.status_code != 403,
        describe(resp),
    )

    bucket = unique("pycompat-boto")
    resp = c.request("PUT", f"{API}/buckets/{bucket}")
    r.check("botocore: PUT bucket is 201", resp.status_code == 201, describe(resp))

    key_name = "dir/with space/file.txt"
    payload = b"botocore payload \x00\xff " + os.urandom(32)
    path = object_path(bucket, key_name)
    resp = c.request("PUT", path, payload, {"Content-Type": "application/octet-stream"})
    r.check(f"botocore: PUT object {key_name!r} is 200", resp.status_code == 200, describe(resp))
    resp = c.request("GET", path)
    r.check(
        f"botocore: GET object {key_name!r} returns the bytes put",
        resp.status_code == 200 and resp.content == payload,
        f"HTTP {resp.status_code}, {len(resp.content)} bytes (expected {len(payload)})",
    )

    signed = {"name": unique("pycompat-signed"), "description": "signed"}
    sent = {"name": unique("pycompat-tampered"), "description": "tampered"}
    resp = c.json("POST", f"{API}/model-groups", signed, send_obj=sent)
    r.check("botocore: body changed after signing is 403", resp.status_code == 403, describe(resp))

    wrong = Botocore(endpoint, key, secret + "x")
    resp = wrong.request("GET", f"{API}/whoami")
    r.check(
        "botocore: wrong secret is 403 mentioning the signature",
        resp.status_code == 403 and "signature" in message_of(resp).lower(),
        describe(resp),
    )

    url, hdrs = c.sign("GET", f"{API}/whoami", clock_delta=-CLOCK_SKEW)
    amz_date = next((v for k, v in hdrs.items() if k.lower() == "x-amz-date"), "")
    resp = requests.get(url, headers=hdrs, timeout=TIMEOUT)
    r.check(
        "botocore: request signed 20 minutes ago is 403 (expired / clock)",
        resp.status_code == 403 and re.search(r"expired|clock", message_of(resp), re.I),
        f"X-Amz-Date {amz_date}; {describe(resp)}",
    )


# --------------------------------------------------------------------------------------
# requests-aws4auth


def aws4auth_checks(r, endpoint, key, secret):
    auth = AWS4Auth(key, secret, REGION, SERVICE)

    resp = requests.get(f"{endpoint}{API}/whoami", auth=auth, timeout=TIMEOUT)
    r.check(
        "aws4auth: GET whoami is 200 and names the key",
        resp.status_code == 200 and (body_json(resp) or {}).get("access_key_id") == key,
        describe(resp),
    )

    group = unique("pycompat-a4a")
    resp = requests.post(
        f"{endpoint}{API}/model-groups",
        json={"name": group, "description": "requests-aws4auth SigV4 check"},
        auth=auth,
        timeout=TIMEOUT,
    )
    r.check(
        "aws4auth: POST model-groups is 201",
        resp.status_code == 201 and (body_json(resp) or {}).get("name") == group,
        describe(resp),
    )

    missing = unique("pycompat-none")
    query = f"prefix={quote('dir/a b', safe='')}&limit=5"
    resp = requests.get(f"{endpoint}{API}/buckets/{missing}/objects?{query}", auth=auth, timeout=TIMEOUT)
    r.check(
        "aws4auth: query with an encoded space and slash is accepted (not 403)",
        resp.status_code != 403,
        describe(resp),
    )

    bucket = unique("pycompat-a4a")
    resp = requests.put(f"{endpoint}{API}/buckets/{bucket}", auth=auth, timeout=TIMEOUT)
    r.check("aws4auth: PUT bucket is 201", resp.status_code == 201, describe(resp))

    key_name = "dir/with space/file.txt"
    payload = b"aws4auth payload \x00\xff " + os.urandom(32)
    url = endpoint + object_path(bucket, key_name)
    resp = requests.put(
        url, data=payload, headers={"Content-Type": "application/octet-stream"}, auth=auth, timeout=TIMEOUT
    )
    r.check(f"aws4auth: PUT object {key_name!r} is 200", resp.status_code == 200, describe(resp))
    resp = requests.get(url, auth=auth, timeout=TIMEOUT)
    r.check(
        f"aws4auth: GET object {key_name!r} returns the bytes put",
        resp.status_code == 200 and resp.content == payload,
        f"HTTP {resp.status_code}, {len(resp.content)} bytes (expected {len(payload)})",
    )

    wrong = AWS4Auth(key, secret + "x", REGION, SERVICE)
    resp = requests.get(f"{endpoint}{API}/whoami", auth=wrong, timeout=TIMEOUT)
    r.check(
        "aws4auth: wrong secret is 403 mentioning the signature",
        resp.status_code == 403 and "signature" in message_of(resp).lower(),
        describe(resp),
    )


# --------------------------------------------------------------------------------------
# unsigned


def unsigned_checks(r, endpoint):
    resp = requests.get(f"{endpoint}{API}/whoami", timeout=TIMEOUT)
    r.check(
        "unsigned: GET whoami is 403 Missing Authentication Token",
        resp.status_code == 403 and body_json(resp) == {"message": "Missing Authentication Token"},
        describe(resp),
    )


def main(argv):
    if len(argv) != 4:
        print(f"usage: {argv[0]} ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY", file=sys.stderr)
        return 2
    endpoint, key, secret = argv[1].rstrip("/"), argv[2], argv[3]

    r = Report()
    r.section("unsigned", unsigned_checks, endpoint)
    r.section("botocore", botocore_checks, endpoint, key, secret)
    r.section("aws4auth", aws4auth_checks, endpoint, key, secret)
    print(f"{r.passed} passed, {r.failed} failed", flush=True)
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
