"""boto3's Lambda client against nimbus: Invoke with RequestResponse, Tail logs, Event,
DryRun, an unknown function and a function error; then the seeds' testAPI.py request.

Usage: lambda_invoke.py ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY
"""
import base64
import json
import sys

import boto3
import botocore.exceptions

endpoint, key, secret = sys.argv[1:4]
client = boto3.client(
    "lambda",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=key,
    aws_secret_access_key=secret,
)
sample = {"instances": [{"Age": 22, "Sex": "male", "Pclass": 3}, {"Age": 38, "Sex": "female", "Pclass": 1}]}
checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"FAILED: {what}")
        sys.exit(1)
    checks += 1


r = client.invoke(FunctionName="predict", Payload=json.dumps(sample), LogType="Tail")
check(r["StatusCode"] == 200, f"RequestResponse status {r['StatusCode']}")
check("FunctionError" not in r, "no function error")
proxy = json.loads(r["Payload"].read())
check(proxy["statusCode"] == 200, f"proxy status {proxy}")
check(json.loads(proxy["body"])["predictions"] == [0, 1], f"predictions {proxy}")
log = base64.b64decode(r["LogResult"]).decode()
check("START RequestId: " in log and "\tBilled Duration: " in log, f"tail log {log!r}")
check(r["ExecutedVersion"] == "$LATEST", f"executed version {r.get('ExecutedVersion')}")

r = client.invoke(FunctionName="predict", Payload=json.dumps(sample), Qualifier="$LATEST")
check(r["StatusCode"] == 200, "qualifier $LATEST")

r = client.invoke(FunctionName="predict", InvocationType="Event", Payload=json.dumps(sample))
check(r["StatusCode"] == 202, f"Event status {r['StatusCode']}")
r = client.invoke(FunctionName="predict", InvocationType="DryRun", Payload=b"{}")
check(r["StatusCode"] == 204, f"DryRun status {r['StatusCode']}")

try:
    client.invoke(FunctionName="nope", Payload=b"{}")
    check(False, "an unknown function must fail")
except client.exceptions.ResourceNotFoundException as e:
    check("function:nope" in str(e), f"not-found message {e}")

r = client.invoke(FunctionName="slow", Payload=json.dumps(sample))
check(r["StatusCode"] == 200 and r.get("FunctionError") == "Unhandled", f"function error {r}")
err = json.loads(r["Payload"].read())
check(err["errorType"] == "Sandbox.Timedout" and "timed out" in err["errorMessage"], f"error body {err}")

bad = boto3.client(
    "lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key="wrong" + secret
)
try:
    bad.invoke(FunctionName="predict", Payload=b"{}")
    check(False, "a bad secret must fail")
except botocore.exceptions.ClientError as e:
    check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, f"bad secret {e}")

# The seeds' testAPI.py: requests.post(URL + "/predict", json={"instances": ...}).
import requests

URL = endpoint + "/titanic/prod"
response = requests.post(URL + "/predict", json=sample)
check(response.status_code == 200 and response.json() == {"predictions": [0, 1]}, f"testAPI.py flow {response.text}")

print(f"boto3 lambda: all checks passed ({checks})")
