"""Python services instrumented with the OpenTelemetry Python SDK, for the interop test.

    python3 otel_peer.py server        serve on 127.0.0.1 (free port); print {"ready": port}
    python3 otel_peer.py client URL    call URL inside a client span; print what happened

Both use the SDK's default propagators (W3C trace context + baggage) through
`opentelemetry.propagate`, exactly as an instrumented Python service would. Finished spans are
kept in memory and reported as JSON, so the test can check ids and parents on both sides.
"""

import json
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()


def setup(name):
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return trace.get_tracer(name)


def describe(span):
    ctx = span.get_span_context()
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "parent_is_remote": bool(span.parent and span.parent.is_remote),
    }


def serve():
    tracer = setup("py-downstream")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            carrier = {k.lower(): v for k, v in self.headers.items()}
            parent = propagate.extract(carrier)
            with tracer.start_as_current_span("GET /inventory", context=parent, kind=trace.SpanKind.SERVER):
                pass
            span = exporter.get_finished_spans()[-1]
            body = json.dumps(
                {
                    "span": describe(span),
                    "received": {
                        k: carrier.get(k)
                        for k in ("traceparent", "tracestate", "baggage", "x-request-id")
                    },
                }
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(json.dumps({"ready": server.server_address[1]}), flush=True)
    server.serve_forever()


def call(url):
    tracer = setup("py-caller")
    with tracer.start_as_current_span("call rust service", kind=trace.SpanKind.CLIENT):
        headers = {"x-request-id": "py-req-1", "baggage": "tenant=acme"}
        propagate.inject(headers)
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
            echoed_request_id = response.headers.get("x-request-id")
    print(
        json.dumps(
            {
                "span": describe(exporter.get_finished_spans()[-1]),
                "answer": answer,
                "echoed_request_id": echoed_request_id,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["server"]:
        serve()
    elif sys.argv[1:2] == ["client"] and len(sys.argv) == 3:
        call(sys.argv[2])
    else:
        sys.exit(__doc__)
