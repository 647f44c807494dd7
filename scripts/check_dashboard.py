"""Checks a running demo's dashboard over HTTP: the page, the sources, the Hystrix stream of
this instance, and the aggregated stream of both instances. Usage: check_dashboard.py URL"""
import json
import sys
import time
import urllib.request

base = sys.argv[1]


def get(path, timeout=10):
    return urllib.request.urlopen(base + path, timeout=timeout)


def events(path, want, within=15.0):
    """Reads SSE `data:` events from path until `want(events)` holds."""
    seen = []
    deadline = time.time() + within
    with get(path) as response:
        assert response.headers["Content-Type"] == "text/event-stream;charset=UTF-8", response.headers
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if want(seen):
                    return seen
            if time.time() > deadline:
                break
    raise SystemExit(f"{path}: not seen within {within}s; last events: {seen[-3:]}")


page = get("").read().decode()
assert "<html" in page.lower(), page[:200]
sources = json.load(get("dashboard/sources.json"))
assert [s["id"] for s in sources["sources"]][:2] == ["local", "all"], sources
local = events("hystrix.stream", lambda es: {"inventory", "payments", "recommendations"} <= {e["name"] for e in es})
assert all(len(e) == 49 for e in local if e["type"] == "HystrixCommand"), "48 Hystrix keys + circuitBreakerState"
events("turbine.stream", lambda es: any(e.get("reportingHosts") == 2 for e in es))
print(f"dashboard at {base}: page, sources, /hystrix.stream and /turbine.stream (2 hosts) all answer")
