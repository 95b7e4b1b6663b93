"""``hcompile serve --ray``: the same KServe v2 API from Ray Serve replicas.

Starts one small local Ray instance for the module (2 CPUs, no dashboard) and serves ``mlp``
(batch 4, dynamic batching) from two replicas. Skipped without the ``ray`` extra.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import hcompile

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
httpx = pytest.importorskip("httpx")
httpclient = pytest.importorskip("tritonclient.http")
from hcompile.serve import ray_app  # noqa: E402

BATCH = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def artifact(zoo_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("serve_ray") / "mlp_b4.hca"
    hcompile.compile(zoo_path("mlp"), input_shapes={"x": (BATCH, 784)}).save(path)
    return path


@pytest.fixture(scope="module")
def ray_server(artifact):
    port = _free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        ray_app.run(artifact, "mlp", host="127.0.0.1", port=port, replicas=2, address=None,
                    max_batch=BATCH, batch_timeout_ms=5, max_body_bytes=1 << 20,
                    blocking=False)
        yield f"127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_ray_replicas_serve_the_model(ray_server, artifact):
    exe = hcompile.load(artifact)
    rng = np.random.default_rng(0)
    requests = [rng.standard_normal((1 + i % BATCH, 784)).astype(np.float32) for i in range(12)]

    def one(x):
        with httpclient.InferenceServerClient(ray_server) as c:
            assert c.is_server_live() and c.is_model_ready("mlp")
            tensor = httpclient.InferInput("x", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            return c.infer("mlp", [tensor]).as_numpy("y")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, requests))
    app = serve.status().applications["hcompile-mlp"]
    assert app.deployments["hcompile-mlp"].replica_states == {"RUNNING": 2}
    for x, got in zip(requests, results, strict=True):
        padded = np.zeros((BATCH, 784), np.float32)
        padded[:len(x)] = x
        # Rows are computed independently; batching only moves a row to another slot.
        np.testing.assert_allclose(got, exe.run({"x": padded})["y"][:len(x)],
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("body", "status", "words"), [
    (b"{", 400, "not valid JSON"),
    (b'{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}', 400,
     "expected [-1, 784]"),
    (b" " * ((1 << 20) + 10), 413, "larger than"),
])
def test_ray_bad_requests_get_4xx(ray_server, body, status, words):
    reply = httpx.post(f"http://{ray_server}/v2/models/mlp/infer", content=body, timeout=30)
    assert reply.status_code == status
    assert words in reply.json()["error"]
    meta = httpx.get(f"http://{ray_server}/v2/models/mlp", timeout=30)
    assert meta.status_code == 200 and meta.json()["inputs"][0]["shape"] == [-1, 784]
