"""Parses Prometheus text from stdin with the official Python client's parser (PyPI
prometheus_client) and prints its samples as JSON: family, type, sample name, labels, value.
A document the parser refuses makes it exit non-zero with the parser's message."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append(
            {"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value}
        )
print(json.dumps(samples))
