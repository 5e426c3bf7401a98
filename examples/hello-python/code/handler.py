"""The Egyptian-art analyzer of the seed tutorial, as a Lambda handler.

It takes `POST {"image": "<base64>"}` through the gateway (payload format 1.0 or 2.0), checks
the request (405 for any other method, 400 for a missing or bad body), sends the image to an
outside model API with the key from its secret environment variable MODEL_API_KEY, and
returns the model's analysis (500 when the model API fails).
"""
import base64
import binascii
import json
import os

import requests

MODEL_API_URL = os.environ.get("MODEL_API_URL", "")


def respond(status, body):
    return {
        "statusCode": status,
        "headers": {"Access-Control-Allow-Origin": "*", "Content-Type": "application/json"},
        "body": json.dumps(body, indent=2),
    }


def method_of(event):
    # 1.0 events carry httpMethod; 2.0 events requestContext.http.method.
    return event.get("httpMethod") or event.get("requestContext", {}).get("http", {}).get("method")


def lambda_handler(event, context):
    if method_of(event) != "POST":
        return respond(405, {"error": f"method {method_of(event)} is not allowed: send POST"})
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    if not body:
        return respond(400, {"error": 'the request has no body: send JSON like {"image": "<base64>"}'})
    try:
        request = json.loads(body)
    except json.JSONDecodeError as e:
        return respond(400, {"error": f"the body is not JSON: {e}"})
    image = request.get("image") if isinstance(request, dict) else None
    if not image:
        return respond(400, {"error": 'the field "image" is missing: send a base64-encoded image'})
    try:
        base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        return respond(400, {"error": 'the field "image" is not valid base64'})
    print(f"Received image: {len(image)} characters (base64)")

    key = os.environ.get("MODEL_API_KEY")
    if not key or not MODEL_API_URL:
        return respond(500, {"error": "the function is missing MODEL_API_URL or MODEL_API_KEY"})
    try:
        answer = requests.post(MODEL_API_URL, json={"image": image, "speed": request.get("speed", "fast")},
                               headers={"x-api-key": key}, timeout=10)
        answer.raise_for_status()
        analysis = answer.json()
    except (requests.RequestException, ValueError) as e:
        print(f"model API call failed: {type(e).__name__}")
        return respond(500, {"error": "the model API did not answer; try again later"})
    return respond(200, analysis)
