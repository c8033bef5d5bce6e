"""End-to-end tests of `llmux gateway` in front of two `llmux serve --demo` processes, driven by
the official openai client: routing, streaming, merged model lists, and failover when one
upstream is killed mid-stream and later restarted."""
import concurrent.futures
import re
import signal
import socket
import subprocess
import threading
import time

try:  # recent openai releases ship the client as httpx2
    import httpx2 as httpx
except ImportError:
    import httpx
import openai
import pytest

from conftest import API_KEY, Server, llmux_binary

PROMPT = "The quick brown fox"
GATEWAY_LINE = r"LLMux gateway listening on (http://[^ ]+) \(models: (.*)\)"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def upstream(port=0):
    return Server("--demo", "--api-key", API_KEY, port=port)


class Cluster:
    def __init__(self):
        self.a = upstream()
        self.b_port = free_port()
        self.b = upstream(self.b_port)
        self.b_url = f"http://127.0.0.1:{self.b_port}"
        self.gateway = Server("--upstream", f"demo={self.a.url}", "--upstream", f"demo={self.b_url}",
                              "--policy", "round_robin", "--health-interval-ms", "100", "--read-timeout", "30",
                              command="gateway", pattern=GATEWAY_LINE)
        self.client = openai.OpenAI(base_url=self.gateway.url + "/v1", api_key=API_KEY, max_retries=0, timeout=60)

    def metrics(self):
        return httpx.get(self.gateway.url + "/metrics", timeout=10).text

    def metric(self, name, upstream_url):
        match = re.search(re.escape(f'{name}{{upstream="{upstream_url}"}}') + r" (\S+)", self.metrics())
        return float(match.group(1)) if match else 0.0

    def stop(self):
        for srv in (self.gateway, self.a, self.b):
            try:
                srv.stop(timeout=20)
            except Exception:
                pass


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    yield c
    c.stop()


def test_gateway_routes_and_merges_models(cluster):
    models = cluster.client.models.list()
    assert [m.id for m in models.data] == ["demo"]
    direct = openai.OpenAI(base_url=cluster.a.url + "/v1", api_key=API_KEY, max_retries=0, timeout=60)
    want = direct.completions.create(model="demo", prompt=PROMPT, max_tokens=12, temperature=0).choices[0].text
    for _ in range(4):  # round robin: both replicas answer, identically (same demo weights, greedy)
        got = cluster.client.completions.create(model="demo", prompt=PROMPT, max_tokens=12, temperature=0)
        assert got.choices[0].text == want
    assert cluster.metric("llmux_gateway_upstream_requests_total", cluster.a.url) >= 2
    assert cluster.metric("llmux_gateway_upstream_requests_total", cluster.b_url) >= 2


def test_gateway_streams_and_errors(cluster):
    chunks = list(cluster.client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == 8
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    with pytest.raises(openai.NotFoundError) as err:
        cluster.client.completions.create(model="nope", prompt=PROMPT, max_tokens=2)
    assert err.value.body["code"] == "model_not_found"
    bad = httpx.post(cluster.gateway.url + "/v1/completions", content=b'{"model": ', timeout=10,
                     headers={"Authorization": f"Bearer {API_KEY}"})
    assert bad.status_code == 400 and "error" in bad.json()
    # Upstream errors pass through with their status and body.
    with pytest.raises(openai.BadRequestError):
        cluster.client.completions.create(model="demo", prompt=PROMPT, max_tokens=100000)
    unauthorized = openai.OpenAI(base_url=cluster.gateway.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        unauthorized.completions.create(model="demo", prompt=PROMPT, max_tokens=2)
    text = cluster.metrics()
    assert "llmux_gateway_added_latency_seconds_count" in text
    assert 'llmux_gateway_requests_total{model="demo"}' in text


def long_stream(client, started):
    """Streams a long answer; returns ("ok", chunks) or ("error", message). Sets `started` at the first chunk."""
    pieces = 0
    try:
        for chunk in client.completions.create(model="demo", prompt=PROMPT, max_tokens=1000, temperature=0, stream=True,
                                               extra_body={"ignore_eos": True}):
            pieces += 1
            started.set()
        return ("ok", pieces)
    except openai.APIError as error:
        return ("error", str(error))


def test_failover_when_an_upstream_dies_and_returns(cluster):
    before_b = cluster.metric("llmux_gateway_upstream_requests_total", cluster.b_url)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        started = [threading.Event() for _ in range(4)]
        streams = [pool.submit(long_stream, cluster.client, event) for event in started]
        # Once every stream has its first chunk (round robin put two on each replica), kill one replica.
        for event in started:
            assert event.wait(30)
        assert cluster.metric("llmux_gateway_upstream_outstanding", cluster.b_url) >= 1
        cluster.b.stop(signal.SIGKILL)
        killed_at = time.time()
        # New requests go to the survivor at once (a refused connection is retried there).
        for _ in range(4):
            result = cluster.client.completions.create(model="demo", prompt=PROMPT, max_tokens=4, temperature=0)
            assert result.choices[0].text is not None
        outcomes = [f.result(timeout=90) for f in streams]
    kinds = [kind for kind, _ in outcomes]
    assert "error" in kinds, outcomes  # the streams on the dead replica end with an error event, not a hang
    assert "ok" in kinds, outcomes     # the ones on the survivor finish
    for kind, message in outcomes:
        if kind == "error":
            assert "mid-stream" in message or "upstream" in message, message
    assert cluster.metric("llmux_gateway_upstream_healthy", cluster.b_url) == 0
    assert time.time() - killed_at < 90
    assert cluster.metric("llmux_gateway_upstream_requests_total", cluster.b_url) > before_b

    # Restarted on the same port, it returns to rotation.
    cluster.b = upstream(cluster.b_port)
    deadline = time.time() + 10
    while time.time() < deadline and cluster.metric("llmux_gateway_upstream_healthy", cluster.b_url) != 1:
        time.sleep(0.1)
    assert cluster.metric("llmux_gateway_upstream_healthy", cluster.b_url) == 1
    served_b = cluster.metric("llmux_gateway_upstream_requests_total", cluster.b_url)
    for _ in range(4):
        cluster.client.completions.create(model="demo", prompt=PROMPT, max_tokens=2, temperature=0)
    assert cluster.metric("llmux_gateway_upstream_requests_total", cluster.b_url) >= served_b + 1
    assert re.search(r"llmux_gateway_stream_failures_total [1-9]", cluster.metrics())


def test_a_port_already_in_use_is_a_clear_error():
    """The gateway that cannot listen says where and what to do, and exits without a crash."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([llmux_binary(), "gateway", "--upstream", "m=http://127.0.0.1:9", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr, done.stderr
    assert "--port" in done.stderr
    assert "Fatal error" not in done.stderr and "crashed" not in done.stderr, done.stderr
