"""Sends N requests of one kind, one after another on one connection, and checks
each answer (bench/instructions/run.sh)."""

import http.client
import json
import sys
import time

port, kind, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = json.dumps({"name": "widget", "price": 9.99, "tags": ["blue", "small"]})
deadline = time.time() + 120
while True:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.connect()
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.5)
for _ in range(count):
    if kind == "hello":
        connection.request("GET", "/hello")
    elif kind == "items":
        connection.request("GET", "/items/42?q=widget")
    else:
        connection.request("POST", "/struct", body=body, headers={"content-type": "application/json"})
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
