"""``hcompile serve ARTIFACT``: serve an artifact over the KServe v2 REST protocol.

With ``--max-batch N`` the artifact must be compiled for batch N (``hcompile model.onnx
--input-shape x=N,...``); requests of 1..N rows are batched dynamically. ``--ray`` runs the
same API in Ray Serve replicas. See docs/serving.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hcompile.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve an artifact over HTTP (KServe v2 / Triton protocol)")
    p.add_argument("artifact", type=Path)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000,
                   help="port to listen on (default 8000; 0 picks a free one)")
    p.add_argument("--name", help="model name in the URLs (default: the artifact's file stem)")
    p.add_argument("--max-batch", type=int, metavar="N",
                   help="batch requests dynamically into runs of N rows; the artifact must be "
                        "compiled for batch N")
    p.add_argument("--batch-timeout-ms", type=float, default=2.0, metavar="T",
                   help="longest wait for a batch to fill (default 2 ms)")
    p.add_argument("--max-body-mb", type=float, default=64.0,
                   help="largest request body accepted, in MiB (default 64); larger gets 413")
    p.add_argument("--graceful-timeout", type=int, default=30, metavar="S",
                   help="on SIGTERM/SIGINT, wait up to S seconds for in-flight requests")
    p.add_argument("--ray", action="store_true", help="serve with Ray Serve replicas")
    p.add_argument("--replicas", type=int, default=1, help="Ray Serve replicas (with --ray)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="Ray cluster to join (default: $RAY_ADDRESS, else a local instance)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.artifact.is_file():
        raise UsageError(f"no artifact file {str(args.artifact)!r}",
                         hint="compile one with `hcompile MODEL.onnx -o MODEL.hca`")
    if args.replicas < 1:
        raise UsageError(f"--replicas must be at least 1, got {args.replicas}")
    if not args.ray and (args.replicas != 1 or args.ray_address):
        raise UsageError("--replicas and --ray-address need --ray")
    if args.batch_timeout_ms < 0 or args.max_body_mb <= 0:
        raise UsageError("--batch-timeout-ms must be >= 0 and --max-body-mb > 0")
    name = args.name or args.artifact.stem
    max_body = int(args.max_body_mb * 1024 * 1024)
    if args.ray:
        return _run_ray(args, name, max_body)
    try:
        from hcompile.serve import ModelService, create_app
        from hcompile.serve.server import make_server, serve
    except ImportError as err:
        raise UsageError(f"hcompile serve needs the serve extra ({err.name} is missing)",
                         hint="pip install 'hcompile[serve]'") from None
    import hcompile

    service = ModelService(hcompile.load(args.artifact), name, max_batch=args.max_batch,
                           batch_timeout_ms=args.batch_timeout_ms)
    app = create_app([service], max_body_bytes=max_body)
    server = make_server(app, args.host, args.port, graceful_timeout_s=args.graceful_timeout)

    def started(port: int) -> None:
        if not args.quiet:
            batching = (f", batching up to {args.max_batch} rows" if args.max_batch else "")
            print(f"hcompile: serving model {name!r} at http://{args.host}:{port}/v2/models/"
                  f"{name} (KServe v2{batching}); Ctrl-C stops", flush=True)

    serve(server, on_started=started)
    return 0


def _run_ray(args: argparse.Namespace, name: str, max_body: int) -> int:
    try:
        import ray.serve

        from hcompile.serve import ray_app
    except ImportError as err:
        raise UsageError(f"hcompile serve --ray needs the ray extra ({err.name} is missing)",
                         hint="pip install 'hcompile[ray]'") from None
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ray_app.run(args.artifact, name, host=args.host, port=args.port, replicas=args.replicas,
                address=args.ray_address, max_batch=args.max_batch,
                batch_timeout_ms=args.batch_timeout_ms, max_body_bytes=max_body,
                blocking=False)
    if not args.quiet:
        print(f"hcompile: serving model {name!r} on Ray Serve ({args.replicas} replicas) at "
              f"http://{args.host}:{args.port}/v2/models/{name}; Ctrl-C stops", flush=True)
    stop.wait()
    import ray
    from ray import serve

    serve.shutdown()  # Ray Serve drains in-flight requests of each replica
    ray.shutdown()
    print("hcompile: stopped", file=sys.stderr)
    return 0
