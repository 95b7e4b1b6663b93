"""The KServe v2 REST API as a Starlette ASGI app (served by uvicorn, or by Ray Serve).

Routes (``/versions/1`` may follow the model name; version "1" is the only one):

    GET  /v2                            server metadata
    GET  /v2/health/live                200 while the process serves
    GET  /v2/health/ready               200 once every model is loaded
    GET  /v2/models/{name}              model metadata (inputs, outputs, datatypes, shapes)
    GET  /v2/models/{name}/ready        200 if the model is served here
    GET  /v2/models/{name}/stats        requests answered and executor runs (Triton's shape)
    POST /v2/models/{name}/infer        inference: JSON tensors or the binary extension

Every error answers ``{"error": "<message>"}``: 400 bad request (malformed JSON, wrong input
name, shape or datatype), 404 unknown model or route, 405 wrong method, 413 body over the
limit; 500 only for a failure inside the executor, and the server keeps serving after each.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hcompile import __version__
from hcompile.errors import HcompileError
from hcompile.serve.model import ModelService
from hcompile.serve.protocol import HEADER_LENGTH, RequestError, encode_response, parse_request

log = logging.getLogger("hcompile")

DEFAULT_MAX_BODY = 64 * 1024 * 1024
# An over-long body is read and dropped up to this many bytes, so that the client (which
# sends the whole body before reading) gets the 413; beyond it the connection is closed.
_DRAIN_LIMIT = 256 * 1024 * 1024


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(models: Sequence[ModelService], *, max_body_bytes: int = DEFAULT_MAX_BODY
               ) -> Starlette:
    """An ASGI app serving ``models`` (by their ``name``) over the KServe v2 REST protocol."""
    by_name = {m.name: m for m in models}
    if len(by_name) != len(models):
        raise HcompileError("two served models have the same name",
                            hint="give each a distinct --name")

    def lookup(request: Request) -> ModelService:
        name = request.path_params["name"]
        version = request.path_params.get("version", "1")
        model = by_name.get(name)
        if model is None:
            raise RequestError(404, f"unknown model {name!r}; this server serves "
                                    f"{', '.join(map(repr, by_name))}")
        if version != "1":
            raise RequestError(404, f"model {name!r} has no version {version!r}; it has '1'")
        return model

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "hcompile", "version": __version__,
                             "extensions": ["binary_tensor_data", "statistics"]})

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def model_metadata(request: Request) -> Response:
        return JSONResponse(lookup(request).metadata())

    async def model_ready(request: Request) -> Response:
        model = lookup(request)
        return JSONResponse({"name": model.name, "ready": True})

    async def model_stats(request: Request) -> Response:
        return JSONResponse(lookup(request).statistics())

    async def infer(request: Request) -> Response:
        model = lookup(request)
        body = await _read_body(request, max_body_bytes)
        parsed = parse_request(body, request.headers.get(HEADER_LENGTH), model.output_names)
        try:
            outputs = await model.infer(parsed.inputs)
        except RequestError:
            raise
        except Exception as exc:  # a failure inside the executor: 500, and keep serving
            log.error("model %r: inference failed: %s", model.name, exc,
                      exc_info=not isinstance(exc, HcompileError))
            return error(500, f"inference failed inside the server: {exc}")
        content, headers = encode_response(model.name, parsed, outputs)
        media = headers.pop("Content-Type")
        return Response(content, media_type=media, headers=headers)

    async def on_request_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        return error(exc.status, exc.message)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: f"no route {request.url.path!r}; see /v2/models/{{name}}/infer",
                   405: f"{request.method} is not allowed on {request.url.path}"}
        return error(exc.status_code, message.get(exc.status_code, str(exc.detail)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for model in models:  # uvicorn has already waited for the in-flight requests
            await model.close()

    model_path = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    routes = [
        Route("/v2", server_metadata),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
    ]
    for base in (model_path, versioned):
        routes += [
            Route(base, model_metadata),
            Route(base + "/ready", model_ready),
            Route(base + "/stats", model_stats),
            Route(base + "/infer", infer, methods=["POST"]),
        ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        RequestError: on_request_error,
        HTTPException: on_http_error,
    })
    app.state.models = by_name
    return app


async def _read_body(request: Request, limit: int) -> bytes:
    too_big = RequestError(413, f"the request body is larger than the server's limit of "
                                f"{limit} bytes (hcompile serve --max-body-mb)")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > _DRAIN_LIMIT:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > _DRAIN_LIMIT:
            break
    if size > limit:
        raise too_big
    return b"".join(chunks)
