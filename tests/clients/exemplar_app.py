"""An application instrumented with the official Prometheus Python client: a histogram
and a counter observed with exemplars that name a trace. It serves /metrics on a free
port (OpenMetrics when asked for it) and prints the port, then keeps observing."""

import sys
import time

from prometheus_client import Counter, Histogram, start_http_server

trace_id = sys.argv[1]
latency = Histogram(
    "checkout_duration_seconds", "Checkout latency.", buckets=[0.1, 0.5, 1.0]
)
checkouts = Counter("checkouts", "Completed checkouts.")

server, _ = start_http_server(0, addr="127.0.0.1")
print(server.server_port, flush=True)
while True:
    latency.observe(0.3, exemplar={"trace_id": trace_id, "span_id": "b7ad6b7169203331"})
    checkouts.inc(exemplar={"trace_id": trace_id})
    time.sleep(0.2)
