#!/usr/bin/env python3
"""Dev helper: serves the dashboard assets at the Rust server's paths, with fake streams.

Python standard library only. Not used by the Rust tests; for working on the page and for
running dashboard-e2e.mjs without the Rust server:

    python3 replay_server.py --port 8765 [--token SECRET] [--many 300]
    node dashboard-e2e.mjs --url http://127.0.0.1:8765/ --command payments --screenshot /tmp/d.png

Routes (as the Rust server's, with the same Content-Security-Policy):
  /                       assets/index.html
  /dashboard/app.js       assets/app.js
  /dashboard/app.css      assets/app.css
  /dashboard/sources.json two sources: "local" (synthetic) and "sample" (Java capture replay)
  /hystrix.stream         synthetic: `payments` goes CLOSED -> OPEN -> HALF_OPEN -> CLOSED every
                          ~10 s (with circuitBreakerState), plus aggregated (Turbine-form) events,
                          forced/disabled/metrics-only breakers, bulkheads, a deleteData event,
                          and a name full of HTML to check escaping
  /sample.stream          replays the Netflix dashboard sample capture in a loop (`:ping` lines kept)
  /broken.stream          answers 503 (listed only with --broken-source)
"""
import argparse
import json
import math
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
ASSETS = os.path.normpath(os.path.join(HERE, "..", "..", "assets"))
SAMPLE = "/work/shared/fixtures/hystrix/netflix-dashboard-sample.stream"
SAMPLE_FALLBACK = os.path.normpath(os.path.join(HERE, "..", "common", "netflix-dashboard-sample.stream"))
CSP = ("default-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "style-src 'self'; script-src 'self'")
PERCENTILES = ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"]
CYCLE_S = 10.0


def latency(base):
    factors = [0.3, 0.6, 1.0, 1.4, 2.2, 3.0, 5.5, 7.0, 12.0]
    return {k: int(base * f) for k, f in zip(PERCENTILES, factors)}


def command(name, group, state, requests, error_pct, lat, hosts=1, **extra):
    """A HystrixCommand event in our server's layout (48 Hystrix keys + circuitBreakerState)."""
    errors = requests * error_pct // 100
    short = errors if state in ("OPEN", "FORCED_OPEN") else 0
    failures = errors - short
    timeouts = failures // 4
    failures -= timeouts
    event = {
        "type": "HystrixCommand", "name": name, "group": group,
        "currentTime": int(time.time() * 1000),
        "isCircuitBreakerOpen": state in ("OPEN", "HALF_OPEN", "FORCED_OPEN"),
        "errorPercentage": error_pct, "errorCount": errors, "requestCount": requests,
        "rollingCountBadRequests": 0, "rollingCountCollapsedRequests": 0, "rollingCountEmit": 0,
        "rollingCountExceptionsThrown": 0, "rollingCountFailure": failures,
        "rollingCountFallbackEmit": 0, "rollingCountFallbackFailure": failures // 3,
        "rollingCountFallbackMissing": 0, "rollingCountFallbackRejection": 0,
        "rollingCountFallbackSuccess": errors - failures // 3,
        "rollingCountResponsesFromCache": 0, "rollingCountSemaphoreRejected": 0,
        "rollingCountShortCircuited": short, "rollingCountSuccess": requests - errors,
        "rollingCountThreadPoolRejected": 0, "rollingCountTimeout": timeouts,
        "currentConcurrentExecutionCount": min(3, requests % 4),
        "rollingMaxConcurrentExecutionCount": 4,
        "latencyExecute_mean": lat, "latencyExecute": latency(lat),
        "latencyTotal_mean": lat + 1, "latencyTotal": latency(lat + 1),
        "propertyValue_circuitBreakerRequestVolumeThreshold": 20,
        "propertyValue_circuitBreakerSleepWindowInMilliseconds": 2000,
        "propertyValue_circuitBreakerErrorThresholdPercentage": 50,
        "propertyValue_circuitBreakerForceOpen": state == "FORCED_OPEN",
        "propertyValue_circuitBreakerForceClosed": state == "FORCED_CLOSED",
        "propertyValue_circuitBreakerEnabled": state != "DISABLED",
        "propertyValue_executionIsolationStrategy": "SEMAPHORE",
        "propertyValue_executionIsolationThreadTimeoutInMilliseconds": 1000,
        "propertyValue_executionTimeoutInMilliseconds": 1000,
        "propertyValue_executionIsolationThreadInterruptOnTimeout": False,
        "propertyValue_executionIsolationThreadPoolKeyOverride": None,
        "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests": 10,
        "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests": 10,
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": 10000,
        "propertyValue_requestCacheEnabled": False, "propertyValue_requestLogEnabled": False,
        "reportingHosts": hosts, "threadPool": group,
        "circuitBreakerState": state,
    }
    event.update(extra)
    return event


def bulkhead(name, active, cap, executed, rejected, hosts=1):
    return {
        "type": "HystrixThreadPool", "name": name, "currentTime": int(time.time() * 1000),
        "currentActiveCount": active, "currentCorePoolSize": cap, "currentLargestPoolSize": cap,
        "currentMaximumPoolSize": cap, "currentPoolSize": cap, "currentQueueSize": 0,
        "currentCompletedTaskCount": executed * 7, "currentTaskCount": executed * 7 + active,
        "rollingCountThreadsExecuted": executed, "rollingMaxActiveThreads": max(active, cap // 2),
        "rollingCountCommandRejections": rejected,
        "propertyValue_queueSizeRejectionThreshold": 0,
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": 10000,
        "reportingHosts": hosts,
    }


def payments_phase(t):
    """payments over one ~10 s cycle: CLOSED (errors rising) -> OPEN -> HALF_OPEN -> CLOSED."""
    p = t % CYCLE_S
    if p < 3.0:
        return "CLOSED", 120 + int(p * 20), int(p * 15)
    if p < 6.0:
        return "OPEN", 140, 85
    if p < 7.5:
        return "HALF_OPEN", 60, 40
    return "CLOSED", 90, 2


def synthetic_frame(t, tick, many):
    state, requests, err = payments_phase(t)
    wobble = int(10 * math.sin(t / 3))
    events = [
        command("payments", "billing", state, requests, err, 35 + wobble // 2),
        command("inventory", "warehouse", "CLOSED", 300 + wobble * 4, 1, 12),
        command("recommendations", "personalisation", "FORCED_OPEN", 50, 100, 0),
        command("legacy-reports", "reports", "FORCED_CLOSED", 20, 30, 840),
        command("audit-log", "compliance", "DISABLED", 5, 0, 3),
        command("search", "catalog", "METRICS_ONLY", 1800, 12, 14500),
        command('<img src=x onerror="alert(1)"> & <b>bold</b>', "<script>", "CLOSED", 3, 0, 1),
    ]
    # Turbine form: summed numbers, counted strings/booleans/properties, 3 hosts.
    shipping = command("shipping", "logistics", "CLOSED", 900 + wobble * 10, 11, 3 * 22, hosts=3)
    shipping.update({
        "circuitBreakerState": {"CLOSED": 2, "OPEN": 1} if (t % 20) < 14 else "CLOSED",
        "isCircuitBreakerOpen": {"true": 1, "false": 2} if (t % 20) < 14 else False,
        "propertyValue_circuitBreakerForceOpen": {"false": 3},
        "propertyValue_circuitBreakerForceClosed": False,
        "propertyValue_circuitBreakerSleepWindowInMilliseconds": {"5000": 2, "2000": 1},
        "propertyValue_executionIsolationStrategy": {"SEMAPHORE": 3},
        "errorPercentage": 33,  # summed by Java Turbine; the page recomputes it from the counts
    })
    events.append(shipping)
    # Java Hystrix aggregated (no circuitBreakerState): state from the flags.
    java = command("java-geo", "geo", "CLOSED", 400, 45, 2 * 40, hosts=2)
    del java["circuitBreakerState"]
    java.update({
        "isCircuitBreakerOpen": {"true": 1, "false": 1},
        "propertyValue_circuitBreakerForceOpen": False,
        "propertyValue_circuitBreakerEnabled": {"true": 2},
    })
    events.append(java)
    for i in range(many):
        events.append(command(f"svc-{i:03d}", f"group-{i % 17}", "OPEN" if i % 37 == 5 else "CLOSED",
                              (i * 13 + tick) % 400, (i * 7) % 60, 5 + i % 90))
    # A command that comes and goes: deleted in the second half of each 20 s.
    if (t % 20) < 10:
        events.append(command("temporary", "misc", "CLOSED", 10, 0, 5))
    else:
        events.append({"type": "HystrixCommand", "name": "temporary", "deleteData": "true"})
    events += [
        bulkhead("billing", 2 + tick % 3, 10, 1200 + wobble, 0),
        bulkhead("warehouse", 10, 10, 5400, 37),
        bulkhead("catalog", 7, 10, 800, 0),
        bulkhead("logistics", 9, 30, 2700, 4, hosts=3),
    ]
    return events


def sample_blocks():
    path = SAMPLE if os.path.exists(SAMPLE) else SAMPLE_FALLBACK
    with open(path, encoding="utf-8") as f:
        text = f.read()
    # SSE events are separated by blank lines; keep comments and pings as they are.
    return [b.strip("\n") + "\n\n" for b in text.split("\n\n") if b.strip()]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "replay-dashboard/1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("replay: " + fmt % args + "\n")

    def authorized(self, query):
        token = self.server.token
        if token is None:
            return True
        auth = self.headers.get("Authorization", "")
        raw = [p[len("access_token="):] for p in (urlsplit(self.path).query or "").split("&")
               if p.startswith("access_token=")]
        return auth == f"Bearer {token}" or (raw and raw[0] == token)

    def send_body(self, status, body, content_type):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        # The static assets carry no data, and a browser fetches them without the page's
        # ?access_token=, so they are served without it (the Rust server must do the same).
        public = url.path in ("/dashboard/app.js", "/dashboard/app.css")
        if not public and not self.authorized(query):
            return self.send_body(401, "a bearer token is required\n", "text/plain")
        assets = {
            "/": ("index.html", "text/html; charset=utf-8"),
            "/dashboard/app.js": ("app.js", "text/javascript; charset=utf-8"),
            "/dashboard/app.css": ("app.css", "text/css; charset=utf-8"),
        }
        if url.path in assets:
            name, ctype = assets[url.path]
            with open(os.path.join(ASSETS, name), "rb") as f:
                return self.send_body(200, f.read(), ctype)
        if url.path == "/dashboard/sources.json":
            sources = [
                {"id": "local", "label": "this instance (synthetic)", "url": "hystrix.stream"},
                {"id": "sample", "label": "Netflix sample (Java capture)", "url": "sample.stream?delay=500"},
            ]
            if self.server.broken_source:
                sources.append({"id": "broken", "label": "broken (503)", "url": "broken.stream"})
            return self.send_body(200, json.dumps({"default": "local", "sources": sources}),
                                  "application/json")
        if url.path == "/hystrix.stream":
            return self.stream(self.synthetic())
        if url.path == "/sample.stream":
            return self.stream(self.replay())
        if url.path == "/broken.stream":
            return self.send_body(503, "upstream unavailable\n", "text/plain")
        return self.send_body(404, "not found\n", "text/plain")

    def synthetic(self):
        start = time.time()
        tick = 0
        while True:
            t = time.time() - start
            frame = "".join(f"data: {json.dumps(e)}\n\n"
                            for e in synthetic_frame(t, tick, self.server.many))
            if tick % 4 == 0:
                frame += "ping: \n\n:ping\n\n"
            yield frame
            tick += 1
            time.sleep(0.5)

    def replay(self):
        blocks = sample_blocks()
        while True:
            for block in blocks:
                if block.startswith("data:"):
                    # Refresh the timestamp so "last event" looks live.
                    event = json.loads(block[len("data:"):])
                    event["currentTime"] = int(time.time() * 1000)
                    block = f"data: {json.dumps(event)}\n\n"
                    time.sleep(0.06)
                yield block

    def stream(self, frames):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream;charset=UTF-8")
        self.send_header("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for frame in frames:
                if self.server.stopping.is_set():
                    return
                self.wfile.write(frame.encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default=None, help="require this access token")
    parser.add_argument("--many", type=int, default=0, help="add this many extra commands")
    parser.add_argument("--broken-source", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.token = args.token
    server.many = args.many
    server.broken_source = args.broken_source
    server.verbose = args.verbose
    server.stopping = threading.Event()
    print(f"replay server at http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()


if __name__ == "__main__":
    main()
