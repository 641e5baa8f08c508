"""Load test of the web page's server on loopback: CLIENTS threads each make REQUESTS
``/faces`` calls (8 faces each, other seeds) against one server, as ``dcgan.py serve``
runs it; prints the latency percentiles and the error count, and exits 1 on any error
or when the whole test runs past ``--limit`` seconds.

    python benchmarks/page_load.py                       # the ready model, 8 x 10
    python benchmarks/page_load.py --checkpoint runs/dcgan --clients 16 --requests 20

The server answers one model call at a time (serve.Page's lock), so latency grows
with the clients while throughput stays that of one call after another.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import cli  # the project's, from the path just set
import generation
import serve


def client(url: str, k: int, requests: int) -> tuple[list[float], int]:
    """(seconds per answered call, errors) of one client."""
    times, errors = [], 0
    for m in range(requests):
        body = json.dumps({"spec": "Smiling, Eyeglasses=0.8", "seed": k * requests + m}).encode()
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url + "/faces", body), timeout=120
            ) as r:
                ok = r.status == 200 and len(json.loads(r.read())["faces"]) == 8
        except OSError:
            ok = False
        times.append(time.perf_counter() - start)
        errors += not ok
    return times, errors


def load_test(page: serve.Page, clients: int, requests: int) -> dict:
    """Latency percentiles (ms), calls per second and errors of ``clients`` x ``requests``."""
    server = serve.start(page, 0, log=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(lambda k: client(url, k, requests), range(clients)))
        seconds = time.perf_counter() - start
    finally:
        server.shutdown()
        server.server_close()
    times = np.concatenate([t for t, _ in results]) * 1000
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return {
        "calls": len(times),
        "errors": sum(e for _, e in results),
        "seconds": seconds,
        "calls_per_second": len(times) / seconds,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
    }


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("page_load.py", "Load test of dcgan.py serve on loopback.")
    p.add_argument("--checkpoint", help="a run (default: as dcgan.py serve chooses)")
    p.add_argument("--clients", type=cli.positive_int, default=8)
    p.add_argument("--requests", type=cli.positive_int, default=10, help="calls per client")
    p.add_argument("--limit", type=cli.positive_float, default=600, help="seconds for it all")
    args = p.parse_args(argv)
    page = serve.Page(generation.FaceModel.open(args.checkpoint))
    page.answer("/faces", b"{}")  # the first call traces the model; not part of the test
    result = load_test(page, args.clients, args.requests)
    print(
        f"{args.clients} clients x {args.requests} calls of 8 faces, {page.model.source}: "
        f"{result['errors']} errors, p50 {result['p50_ms']:.0f} ms, p90 {result['p90_ms']:.0f} ms, "
        f"p99 {result['p99_ms']:.0f} ms, {result['calls_per_second']:.1f} calls/s"
    )
    return int(result["errors"] > 0 or result["seconds"] > args.limit)


if __name__ == "__main__":
    sys.exit(main())
