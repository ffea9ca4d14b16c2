"""Scrapes a real `tokenctl serve`'s /metrics (TOKENCTL_URL, TOKENCTL_TOKEN) and reads it with
prometheus_client's parsers: the OpenMetrics one (what the server says it answers: strict about
`# EOF`, units, `_total` and histogram buckets) and the classic text one. Prints one JSON document
for tests/serve_clients.rs: the content type, every family as the OpenMetrics parser read it
(name, type, unit, samples [name, labels, value]), and the family names the classic parser saw.
"""

import json
import os

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic

r = httpx.get(os.environ["TOKENCTL_URL"] + "/metrics",
              headers={"Authorization": f"Bearer {os.environ['TOKENCTL_TOKEN']}"}, timeout=30)
r.raise_for_status()

families = [
    {"name": f.name, "type": f.type, "unit": f.unit,
     "samples": [[s.name, s.labels, s.value] for s in f.samples]}
    for f in openmetrics(r.text)
]
print(json.dumps({
    "content_type": r.headers["content-type"],
    "families": families,
    "classic_names": [f.name for f in classic(r.text)],
}))
