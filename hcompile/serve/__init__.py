"""Serving compiled artifacts over the KServe v2 REST protocol (Triton's HTTP API).

    from hcompile.serve import ModelService, create_app
    app = create_app([ModelService(hcompile.load("mlp.hca"), "mlp")])   # any ASGI server

``hcompile serve ARTIFACT`` runs that app under uvicorn; ``hcompile serve --ray`` runs the
same app in Ray Serve replicas (:mod:`hcompile.serve.ray_app`). Needs the ``serve`` extra
(starlette, uvicorn); Ray needs the ``ray`` extra.
"""

from __future__ import annotations

from hcompile.serve.app import create_app
from hcompile.serve.model import ModelService

__all__ = ["ModelService", "create_app"]
