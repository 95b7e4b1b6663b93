"""Ray Serve: the same KServe v2 app in N replicas behind Ray's HTTP proxy.

The artifact's bytes travel to the replicas through Ray's object store, so a replica on any
node of the cluster can load it (each node needs hcompile installed). Each replica runs its
own executor and, with ``max_batch``, its own dynamic batcher.
"""

from __future__ import annotations

import os
from typing import Any


def _build_app(artifact_bytes: bytes, name: str, max_batch: int | None,
               batch_timeout_ms: float, max_body_bytes: int) -> Any:
    import tempfile

    import hcompile
    from hcompile.serve import ModelService, create_app

    with tempfile.TemporaryDirectory(prefix="hcompile-serve-") as tmp:
        path = os.path.join(tmp, f"{name}.hca")
        with open(path, "wb") as f:
            f.write(artifact_bytes)
        executor = hcompile.load(path)
    service = ModelService(executor, name, max_batch=max_batch,
                           batch_timeout_ms=batch_timeout_ms)
    return create_app([service], max_body_bytes=max_body_bytes)


def deployment(artifact: str | os.PathLike[str], name: str, *, replicas: int = 1,
               max_batch: int | None = None, batch_timeout_ms: float = 2.0,
               max_body_bytes: int = 64 * 1024 * 1024, ray_actor_options: dict[str, Any] |
               None = None) -> Any:
    """A bound Ray Serve application serving ``artifact``; pass it to ``serve.run``."""
    from ray import serve

    with open(artifact, "rb") as f:
        data = f.read()

    # Ray's default of 5 ongoing requests per replica would starve a batcher of N > 5 rows.
    ongoing = max(32, 4 * (max_batch or 1))

    class HcompileModel:
        def __init__(self, *args: Any) -> None:
            self._args = args

        def __serve_build_asgi_app__(self) -> Any:
            return _build_app(*self._args)

    wrapped: Any = serve.deployment(
        serve.ingress()(HcompileModel), name=f"hcompile-{name}", num_replicas=replicas,
        max_ongoing_requests=ongoing, ray_actor_options=ray_actor_options or {"num_cpus": 0})
    return wrapped.bind(data, name, max_batch, batch_timeout_ms, max_body_bytes)


def run(artifact: str | os.PathLike[str], name: str, *, host: str, port: int,
        replicas: int, address: str | None, max_batch: int | None,
        batch_timeout_ms: float, max_body_bytes: int, blocking: bool = True) -> None:
    """Connect to (or start) a Ray cluster, deploy, and serve at http://host:port/v2/..."""
    import ray
    from ray import serve

    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             ignore_reinit_error=True)
    serve.start(http_options={"host": host, "port": port})
    app = deployment(artifact, name, replicas=replicas, max_batch=max_batch,
                     batch_timeout_ms=batch_timeout_ms, max_body_bytes=max_body_bytes)
    serve.run(app, name=f"hcompile-{name}", route_prefix="/", blocking=blocking)
