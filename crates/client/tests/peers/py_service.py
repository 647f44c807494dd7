"""Two Python instances of PY-PAYMENTS, each a small real HTTP server that registers itself through
py-eureka-client (PyPI) against the registry at EUREKA_URL, and reads the caller's trace context
with OpenTelemetry's Python SDK (W3C propagator).

Usage: py_service.py EUREKA_URL
Prints `PEER READY <instance id> <port>` per instance, then obeys stdin lines:
`kill <id>` closes that instance's server without deregistering it (a crash: the registry still
lists it, connections are refused), `quit` stops every client and prints `PEER STOPPED`.
Each GET answers JSON: the instance id and the trace id the SDK extracted from the request."""
import asyncio
import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import py_eureka_client.eureka_client as eureka_client
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
trace.set_tracer_provider(TracerProvider())
tracer = trace.get_tracer("py-payments")
url = sys.argv[1]


def say(line):
    print("PEER " + line, flush=True)


class Payments(BaseHTTPRequestHandler):
    def do_GET(self):
        context = propagate.extract(dict(self.headers.items()))
        # The callee's own span, child of ours: what an instrumented Python service records.
        with tracer.start_as_current_span("GET " + self.path, context=context) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            parent = trace.get_current_span(context).get_span_context()
            body = json.dumps({
                "instance": self.server.instance_id,
                "trace_id": trace_id,
                "parent_valid": parent.is_valid,
            }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


loop = asyncio.new_event_loop()
threading.Thread(target=loop.run_forever, daemon=True).start()


def run(coroutine):
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)


clients, servers = {}, {}
for n in range(2):
    instance_id = f"py-payments-{n}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Payments)
    server.instance_id = instance_id
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    client = eureka_client.EurekaClient(
        eureka_server=url,
        app_name="py-payments",
        instance_id=instance_id,
        instance_host="127.0.0.1",
        instance_ip="127.0.0.1",
        instance_port=port,
        renewal_interval_in_secs=1,
        duration_in_secs=30,
        should_discover=False,
    )
    run(client.start())
    clients[instance_id], servers[instance_id] = client, server
    say(f"READY {instance_id} {port}")

for line in sys.stdin:
    words = line.split()
    if words[:1] == ["kill"]:
        server = servers.pop(words[1])
        server.shutdown()
        server.server_close()
        say(f"KILLED {words[1]}")
    elif words[:1] == ["quit"]:
        break
for client in clients.values():
    try:
        run(client.stop())
    except Exception as error:  # a stopped registry: nothing to cancel
        logging.warning("stop: %s", error)
say("STOPPED")
