"""A DNS server on 127.0.0.1 (UDP and TCP, PyPI dnslib) that answers A and AAAA questions
from a JSON zone file read at every question, so a test changes the records by rewriting it:

    {"payments.test.": {"A": ["127.0.0.1"], "AAAA": ["::1"], "ttl": 1}}

A name not in the file gets NXDOMAIN. Prints the port it listens on, then serves until killed.
Usage: dns_server.py ZONE_FILE
"""
import json
import sys
import time

from dnslib import AAAA, A, QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer


class ZoneResolver(BaseResolver):
    def __init__(self, path):
        self.path = path

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname)
        try:
            with open(self.path) as f:
                zone = json.load(f)
        except (OSError, ValueError):
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        records = zone.get(name) or zone.get(name.lower())
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        ttl = int(records.get("ttl", 1))
        kind = QTYPE[request.q.qtype]
        for address in records.get(kind, []) if kind in ("A", "AAAA") else []:
            data = A(address) if kind == "A" else AAAA(address)
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=data, ttl=ttl))
        return reply


class Handler(DNSHandler):
    # As real servers do: a UDP answer over 512 bytes is sent truncated (TC set), and the
    # client asks again over TCP.
    udplen = 512


def main():
    resolver = ZoneResolver(sys.argv[1])
    # Quiet: stdout carries the port only, and its reader may be gone.
    quiet = DNSLogger(logf=lambda _: None)
    udp = DNSServer(resolver, address="127.0.0.1", port=0, logger=quiet, handler=Handler)
    udp.start_thread()
    port = udp.server.server_address[1]
    tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=quiet, handler=Handler)
    tcp.start_thread()
    print(port, flush=True)
    while udp.isAlive():
        time.sleep(0.5)


if __name__ == "__main__":
    main()
