"""A Python service using py-eureka-client (PyPI) against our registry.

Usage: py_eureka_peer.py EUREKA_URL
Registers PY-SERVICE with 1 s heartbeats (which also fetch the delta), prints
`REGISTERED`, then `DISCOVERED host:port` once RUST-SERVICE shows up in the registry it
fetched, then on a `stop` line on stdin stops the client (which cancels its registration)
and prints `STOPPED`. Everything else goes to stderr."""
import logging
import sys
import time

import py_eureka_client.eureka_client as eureka_client

logging.basicConfig(stream=sys.stderr, level=logging.INFO)
url = sys.argv[1]


def say(line):
    print("PEER " + line, flush=True)


client = eureka_client.init(
    eureka_server=url,
    app_name="py-service",
    instance_id="py-service-1",
    instance_host="127.0.0.1",
    instance_ip="127.0.0.1",
    instance_port=9099,
    renewal_interval_in_secs=1,
    duration_in_secs=5,
    metadata={"lang": "python"},
)
say("REGISTERED")

deadline = time.time() + 30
found = None
while time.time() < deadline and found is None:
    app = client.applications.get_application("RUST-SERVICE")
    ups = [i for i in app.instances if i.status == "UP"] if app else []
    if ups:
        found = ups[0]
    else:
        time.sleep(0.2)
if found is None:
    say("FAIL: RUST-SERVICE never appeared in the registry py-eureka-client fetched")
    sys.exit(1)
say(f"DISCOVERED {found.hostName}:{found.port.port}")

for line in sys.stdin:
    if line.strip() == "stop":
        break
eureka_client.stop()
say("STOPPED")
