"""Three Python instances of PY-BACKEND, each a small real HTTP server that registers itself
through py-eureka-client (PyPI) against the registry at EUREKA_URL.

Usage: py_instances.py EUREKA_URL
Prints `PEER READY <instance id> <port> <weight>` per instance, then obeys stdin lines:
`out <id>` sets that instance OUT_OF_SERVICE, `stop <id>` stops its client (which cancels its
registration), `quit` stops every client and prints `PEER STOPPED`. Logs go to stderr."""
import asyncio
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import py_eureka_client.eureka_client as eureka_client

logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
url = sys.argv[1]


def say(line):
    print("PEER " + line, flush=True)


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.instance_id.encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


# py-eureka-client's client is asyncio: its coroutines run on a loop of their own thread.
loop = asyncio.new_event_loop()
threading.Thread(target=loop.run_forever, daemon=True).start()


def run(coroutine):
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)


clients = {}
for n in range(3):
    instance_id = f"py-backend-{n}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    server.instance_id = instance_id
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    weight = "3" if n == 0 else "1"
    client = eureka_client.EurekaClient(
        eureka_server=url,
        app_name="py-backend",
        instance_id=instance_id,
        instance_host="127.0.0.1",
        instance_ip="127.0.0.1",
        instance_port=port,
        renewal_interval_in_secs=1,
        duration_in_secs=5,
        should_discover=False,
        metadata={"weight": weight, "zone": "zone-a"},
    )
    run(client.start())
    clients[instance_id] = client
    say(f"READY {instance_id} {port} {weight}")

for line in sys.stdin:
    words = line.split()
    if words[:1] == ["out"]:
        run(clients[words[1]].status_update("OUT_OF_SERVICE"))
        say(f"OUT {words[1]}")
    elif words[:1] == ["stop"]:
        run(clients.pop(words[1]).stop())
        say(f"STOPPED {words[1]}")
    elif words[:1] == ["quit"]:
        break
for client in clients.values():
    run(client.stop())
say("STOPPED")
