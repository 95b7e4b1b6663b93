"""``hcompile serve``: the KServe v2 REST API, checked with Triton's own HTTP client.

One server on loopback serves every zoo model (compiled at batch 1) plus ``mlp`` compiled at
batch 4 with dynamic batching. Outputs must equal ``exe.run`` exactly; each bad request class
must get its 4xx and error body, and the server must keep serving afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import hcompile
from hcompile.errors import UsageError
from tests.conftest import ZOO

httpx = pytest.importorskip("httpx")
httpclient = pytest.importorskip("tritonclient.http")
pytest.importorskip("uvicorn")
from tritonclient.utils import InferenceServerException  # noqa: E402

from hcompile.serve import ModelService, create_app  # noqa: E402
from hcompile.serve.server import BackgroundServer  # noqa: E402

BATCH = 4
MAX_BODY = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def artifacts(zoo_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve")
    paths = {}
    for name in ZOO:
        paths[name] = out / f"{name}.hca"
        hcompile.compile(zoo_path(name)).save(paths[name])
    paths["mlp_b4"] = out / "mlp_b4.hca"
    hcompile.compile(zoo_path("mlp"), input_shapes={"x": (BATCH, 784)}).save(paths["mlp_b4"])
    return paths


@pytest.fixture(scope="module")
def executors(artifacts):
    return {name: hcompile.load(path) for name, path in artifacts.items()}


@pytest.fixture(scope="module")
def server(executors):
    services = [ModelService(executors[name], name) for name in ZOO]
    batched = ModelService(executors["mlp_b4"], "mlp_b4", max_batch=BATCH,
                           batch_timeout_ms=50)
    app = create_app([*services, batched], max_body_bytes=MAX_BODY)
    with BackgroundServer(app) as running:
        running.batched = batched  # type: ignore[attr-defined]
        yield running


@pytest.fixture
def client(server):
    with httpclient.InferenceServerClient(server.url, concurrency=4) as c:
        yield c


def _random_inputs(exe, seed=0, batch=None):
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in exe.inputs:
        shape = (batch, *spec.shape[1:]) if batch else spec.shape
        feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return feeds


def _infer(client, model, feeds, binary=True):
    inputs = []
    for name, value in feeds.items():
        tensor = httpclient.InferInput(name, list(value.shape), "FP32")
        tensor.set_data_from_numpy(value, binary_data=binary)
        inputs.append(tensor)
    return client.infer(model, inputs)


def _assert_serving(client, executors):
    feeds = _random_inputs(executors["mlp"], seed=7)
    result = _infer(client, "mlp", feeds)
    np.testing.assert_array_equal(result.as_numpy("y"), executors["mlp"].run(feeds)["y"])


def test_health_and_metadata(client, executors):
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    for name in ZOO:
        assert client.is_model_ready(name)
        meta = client.get_model_metadata(name)
        exe = executors[name]
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
            (s.name, "FP32", list(s.shape)) for s in exe.inputs]
        assert [t["name"] for t in meta["outputs"]] == [s.name for s in exe.outputs]
    batched = client.get_model_metadata("mlp_b4")
    assert batched["inputs"][0]["shape"] == [-1, 784]
    assert batched["parameters"]["max_batch_size"] == BATCH


@pytest.mark.parametrize("name", ZOO)
def test_infer_equals_direct_run(client, executors, name):
    exe = executors[name]
    feeds = _random_inputs(exe, seed=1)
    expected = exe.run(feeds)
    result = _infer(client, name, feeds)  # binary tensors both ways (the client's default)
    for out, want in expected.items():
        got = result.as_numpy(out)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_infer_json_tensors(client, executors):
    exe = executors["lenet5"]
    feeds = _random_inputs(exe, seed=2)
    tensor = httpclient.InferInput("x", list(feeds["x"].shape), "FP32")
    tensor.set_data_from_numpy(feeds["x"], binary_data=False)
    wanted = httpclient.InferRequestedOutput("y", binary_data=False)
    result = client.infer("lenet5", [tensor], outputs=[wanted], request_id="req-9")
    assert result.get_response()["id"] == "req-9"
    assert "data" in result.get_response()["outputs"][0]
    np.testing.assert_array_equal(result.as_numpy("y"), exe.run(feeds)["y"])


def test_infer_plain_json_over_httpx(server, executors):
    feeds = _random_inputs(executors["mlp"], seed=3)
    body = {"inputs": [{"name": "x", "shape": [1, 784], "datatype": "FP32",
                        "data": feeds["x"].tolist()}]}  # nested lists are row-major too
    reply = httpx.post(f"http://{server.url}/v2/models/mlp/versions/1/infer", json=body)
    assert reply.status_code == 200
    out = reply.json()["outputs"][0]
    got = np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
    np.testing.assert_array_equal(got, executors["mlp"].run(feeds)["y"])


def _mlp_body(**changes):
    tensor = {"name": "x", "shape": [1, 784], "datatype": "FP32", "data": [0.5] * 784}
    tensor.update(changes)
    return json.dumps({"inputs": [tensor]}).encode()


def _binary_body(declared: int, sent: int) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 784], "datatype": "FP32",
                                     "parameters": {"binary_data_size": declared}}]}).encode()
    return header + b"\0" * sent, {"Inference-Header-Content-Length": str(len(header))}


BAD_REQUESTS = {
    # case: (method, path, body, headers, status, words in the error)
    "unknown model": ("POST", "/v2/models/nope/infer", _mlp_body(), {}, 404, "unknown model"),
    "unknown model metadata": ("GET", "/v2/models/nope", b"", {}, 404, "unknown model"),
    "unknown version": ("POST", "/v2/models/mlp/versions/3/infer", _mlp_body(), {}, 404,
                        "no version"),
    "unknown route": ("GET", "/v3/health", b"", {}, 404, "no route"),
    "wrong method": ("GET", "/v2/models/mlp/infer", b"", {}, 405, "not allowed"),
    "malformed json": ("POST", "/v2/models/mlp/infer", b'{"inputs": [', {}, 400, "not valid"),
    "not utf-8": ("POST", "/v2/models/mlp/infer", b"\xff\xfe", {}, 400, "not valid JSON"),
    "json not an object": ("POST", "/v2/models/mlp/infer", b"[1, 2]", {}, 400, "JSON object"),
    "no inputs": ("POST", "/v2/models/mlp/infer", b'{"inputs": []}', {}, 400, "'inputs'"),
    "wrong input name": ("POST", "/v2/models/mlp/infer", _mlp_body(name="z"), {}, 400,
                         "unknown input 'z'"),
    "wrong shape": ("POST", "/v2/models/mlp/infer",
                    _mlp_body(shape=[2, 392]), {}, 400, "expected [1, 784]"),
    "wrong dtype": ("POST", "/v2/models/mlp/infer", _mlp_body(datatype="FP64"), {}, 400,
                    "expects FP32"),
    "unknown dtype": ("POST", "/v2/models/mlp/infer", _mlp_body(datatype="FLOAT"), {}, 400,
                      "unsupported datatype"),
    "too few elements": ("POST", "/v2/models/mlp/infer", _mlp_body(data=[1.0]), {}, 400,
                         "has 1 elements"),
    "ragged data": ("POST", "/v2/models/mlp/infer", _mlp_body(data=[[1.0], [1.0, 2.0]]), {},
                    400, "ragged"),
    "deeply nested json": ("POST", "/v2/models/mlp/infer", b"[" * 100_000 + b"]" * 100_000,
                           {}, 400, "not valid JSON"),
    "null data": ("POST", "/v2/models/mlp/infer", _mlp_body(data=None), {}, 400,
                  "do not fit"),
    "strings as data": ("POST", "/v2/models/mlp/infer", _mlp_body(data=["a"] * 784), {}, 400,
                        "do not fit"),
    "negative dim": ("POST", "/v2/models/mlp/infer", _mlp_body(shape=[-1, 784]), {}, 400,
                     "non-negative"),
    "unknown output": ("POST", "/v2/models/mlp/infer",
                       json.dumps({"inputs": json.loads(_mlp_body())["inputs"],
                                   "outputs": [{"name": "logits"}]}).encode(), {}, 400,
                       "unknown output"),
    "binary size mismatch": ("POST", "/v2/models/mlp/infer", *_binary_body(100, 100), 400,
                             "takes 3136"),
    "binary data missing": ("POST", "/v2/models/mlp/infer", *_binary_body(3136, 100), 400,
                            "ends before"),
    "bad header length": ("POST", "/v2/models/mlp/infer", _mlp_body(),
                          {"Inference-Header-Content-Length": "ten"}, 400, "integer"),
    "batch over max": ("POST", "/v2/models/mlp_b4/infer",
                       _mlp_body(shape=[5, 784], data=[0.0] * 5 * 784), {}, 400, "at most 4"),
    "oversized body": ("POST", "/v2/models/mlp/infer", b" " * (MAX_BODY + 4096), {}, 413,
                       "larger than"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_request_gets_4xx_with_error_body(server, client, executors, case):
    method, path, body, headers, status, words = BAD_REQUESTS[case]
    reply = httpx.request(method, f"http://{server.url}{path}", content=body, headers=headers)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert words in reply.json()["error"]
    _assert_serving(client, executors)  # still serving, same worker


def test_triton_client_sees_the_error_message(client, executors):
    tensor = httpclient.InferInput("x", [1, 28, 28], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 28, 28), np.float32))
    with pytest.raises(InferenceServerException, match=r"expected \[1, 1, 28, 28\]"):
        client.infer("lenet5", [tensor])
    _assert_serving(client, executors)


def test_dynamic_batching_collects_concurrent_requests(server, executors):
    exe = executors["mlp"]
    batched = server.batched
    runs_before = batched.batcher.runs
    requests = [_random_inputs(exe, seed=100 + i) for i in range(16)]

    def one(feeds):
        with httpclient.InferenceServerClient(server.url) as c:
            return _infer(c, "mlp_b4", feeds).as_numpy("y")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, requests))
    for feeds, got in zip(requests, results, strict=True):
        # A batch-4 build may order its sums differently from the batch-1 build.
        np.testing.assert_allclose(got, exe.run(feeds)["y"], rtol=1e-5, atol=1e-6)
    assert batched.batcher.runs - runs_before < 16  # some requests shared a run


def test_batched_model_takes_multi_row_requests(client, executors):
    feeds = _random_inputs(executors["mlp"], seed=5, batch=3)
    got = _infer(client, "mlp_b4", feeds).as_numpy("y")
    assert got.shape == (3, 10)
    for row in range(3):
        want = executors["mlp"].run({"x": feeds["x"][row:row + 1]})["y"]
        np.testing.assert_allclose(got[row:row + 1], want, rtol=1e-5, atol=1e-6)


def test_max_batch_needs_an_artifact_compiled_for_that_batch(executors):
    with pytest.raises(UsageError, match="compiled for batch 4") as info:
        ModelService(executors["mlp"], "mlp", max_batch=4)
    assert "--input-shape x=4,784" in (info.value.hint or "")


class _BrokenExecutor:
    def __init__(self, inner):
        self.inputs, self.outputs = inner.inputs, inner.outputs

    def run(self, feeds):
        raise RuntimeError("device on fire")


def test_executor_failure_is_a_500_and_the_server_lives_on(executors):
    app = create_app([ModelService(_BrokenExecutor(executors["mlp"]), "broken"),
                      ModelService(executors["mlp"], "mlp")])
    with BackgroundServer(app) as running, \
            httpclient.InferenceServerClient(running.url) as c:
        with pytest.raises(InferenceServerException, match="device on fire"):
            _infer(c, "broken", _random_inputs(executors["mlp"]))
        _assert_serving(c, executors)


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    exe = Path(sys.executable).parent / "hcompile"
    proc = subprocess.Popen([str(exe), "serve", *args, "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "serving model" in line, line + proc.stderr.read()  # type: ignore[union-attr]
    return proc, line.split("http://")[1].split("/")[0]


def test_cli_sigterm_finishes_in_flight_requests(artifacts, executors):
    # A 1.5 s batch timeout keeps a lone request in flight while SIGTERM arrives.
    proc, url = _start_cli(str(artifacts["mlp_b4"]), "--name", "m", "--max-batch", "4",
                           "--batch-timeout-ms", "1500")
    feeds = _random_inputs(executors["mlp"], seed=11)
    results: list = []
    with httpclient.InferenceServerClient(url) as c:
        worker = threading.Thread(target=lambda: results.append(_infer(c, "m", feeds)))
        worker.start()
        threading.Event().wait(0.5)
        proc.send_signal(signal.SIGTERM)
        worker.join(30)
    proc.wait(30)
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after draining
    np.testing.assert_allclose(results[0].as_numpy("y"), executors["mlp"].run(feeds)["y"],
                               rtol=1e-5, atol=1e-6)


def test_cli_user_errors_exit_2(artifacts, tmp_path):
    from tests.conftest import hcompile_cli

    missing = hcompile_cli("serve", str(tmp_path / "none.hca"))
    assert missing.returncode == 2 and "no artifact file" in missing.stderr
    unbatched = hcompile_cli("serve", str(artifacts["mlp"]), "--max-batch", "4")
    assert unbatched.returncode == 2
    assert "--input-shape x=4,784" in unbatched.stderr
