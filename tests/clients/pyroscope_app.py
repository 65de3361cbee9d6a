#!/usr/bin/env python3
"""End-to-end test client for a Pyroscope-compatible ingest endpoint.

usage: pyroscope_app.py SERVER_URL [SECONDS] [UPLOAD_INTERVAL_S]
  e.g. pyroscope_app.py http://127.0.0.1:4040 15

Uses pyroscope-io 1.4.x (pip install 'pyroscope-io>=1.4,<1.5').
Sends application_name="pyapp", tags {"env": "test"}; burns CPU in two
distinctly named functions, one of them inside
tag_wrapper({"span_id": "0102030405060708", "span_name": "checkout"}).
"""
import sys
import time
import logging

import pyroscope

SERVER = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4040"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 15.0
UPLOAD_INTERVAL = int(sys.argv[3]) if len(sys.argv) > 3 else 1


def burn_alpha_checkout(deadline):
    x = 0
    while time.monotonic() < deadline:
        for i in range(10000):
            x += i * i
    return x


def burn_beta_background(deadline):
    x = 0
    while time.monotonic() < deadline:
        for i in range(10000):
            x ^= i * 7
    return x


def main():
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ok = pyroscope.configure(
        application_name="pyapp",
        server_address=SERVER,
        tags={"env": "test"},
        upload_interval=UPLOAD_INTERVAL,  # seconds; default 10
        sample_rate=100,                  # Hz (default 100)
        enable_logging=True,
    )
    print(f"configure() -> {ok!r}", flush=True)
    t_start = time.monotonic()
    end = t_start + SECONDS
    while time.monotonic() < end:
        # ~0.5 s in each function, alternating
        with pyroscope.tag_wrapper({"span_id": "0102030405060708",
                                    "span_name": "checkout"}):
            burn_alpha_checkout(min(end, time.monotonic() + 0.5))
        burn_beta_background(min(end, time.monotonic() + 0.5))
    print(f"burned for {time.monotonic() - t_start:.1f}s, shutting down", flush=True)
    print(f"shutdown() -> {pyroscope.shutdown()!r}", flush=True)


if __name__ == "__main__":
    main()
