"""End-to-end tests: a real `llmux serve --demo` driven by the official openai client."""
import concurrent.futures
import json
import math
import os
import signal
import time

try:  # recent openai releases ship the client as httpx2
    import httpx2 as httpx
except ImportError:
    import httpx
import openai
import pytest

from conftest import API_KEY, ROOT, Server, generate_reference

PROMPT = "The quick brown fox"


def ids_of(tokens):
    return [int(t.split(":", 1)[1]) for t in tokens]


def post(server, path, body, key=API_KEY, **kwargs):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    return httpx.post(server.url + path, content=body, headers={**headers, "Content-Type": "application/json"},
                      timeout=120, **kwargs)


def test_health_and_models(server, client):
    assert httpx.get(server.url + "/health").status_code == 200
    models = client.models.list()
    assert [m.id for m in models.data] == ["demo", "demo-qwen2", "demo-mistral"]


def test_completion_matches_generate(client):
    reference = generate_reference(PROMPT, 16, logprobs=1)
    result = client.completions.create(model="demo", prompt=PROMPT, max_tokens=16, temperature=0, logprobs=1,
                                       extra_body={"return_tokens_as_token_ids": True})
    choice = result.choices[0]
    assert ids_of(choice.logprobs.tokens) == reference["token_ids"]
    assert choice.text == reference["text"]
    assert choice.finish_reason == reference["finish_reason"]
    for got, want in zip(choice.logprobs.token_logprobs, reference["logprobs"]):
        assert math.isclose(got, want["logprob"], abs_tol=1e-4)
    assert result.usage.prompt_tokens == len(reference["prompt_token_ids"])
    assert result.usage.completion_tokens == len(reference["token_ids"])
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.object == "text_completion" and result.id.startswith("cmpl-")


def test_completion_token_prompts_and_echo(client):
    reference = generate_reference(PROMPT, 8)
    ids = reference["prompt_token_ids"]
    by_ids = client.completions.create(model="demo", prompt=ids, max_tokens=8, temperature=0)
    assert by_ids.choices[0].text == reference["text"]
    batch = client.completions.create(model="demo", prompt=[ids, ids[:3]], max_tokens=4, temperature=0)
    assert [c.index for c in batch.choices] == [0, 1]
    texts = client.completions.create(model="demo", prompt=[PROMPT, "Hi"], max_tokens=4, temperature=0, echo=True)
    assert texts.choices[0].text.startswith(PROMPT) and texts.choices[1].text.startswith("Hi")


def test_completion_stream_equals_non_stream(client):
    full = client.completions.create(model="demo", prompt=PROMPT, max_tokens=24, temperature=0)
    chunks = list(client.completions.create(model="demo", prompt=PROMPT, max_tokens=24, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == full.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == full.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_raw_sse_framing(server):
    with httpx.stream("POST", server.url + "/v1/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"model": "demo", "prompt": PROMPT, "max_tokens": 4, "stream": True}, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    events = body.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    for event in events[:-2]:
        assert event.startswith("data: ")
        chunk = json.loads(event[len("data: "):])
        assert chunk["object"] == "text_completion"
        assert "usage" not in chunk


def test_chat(client):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"}]
    result = client.chat.completions.create(model="demo", messages=messages, max_tokens=12, temperature=0,
                                            logprobs=True, top_logprobs=2)
    choice = result.choices[0]
    assert choice.message.role == "assistant"
    assert result.object == "chat.completion"
    assert len(choice.logprobs.content) == result.usage.completion_tokens
    for entry in choice.logprobs.content:
        assert len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert entry.bytes == list(entry.token.encode())
    chunks = list(client.chat.completions.create(model="demo", messages=messages, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == choice.message.content
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1 and finishing[0].choices[0].finish_reason == choice.finish_reason
    assert chunks[-1].usage.prompt_tokens == result.usage.prompt_tokens


def test_chat_list_content_and_default_max_tokens(client):
    result = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        temperature=0, max_completion_tokens=3)
    assert result.usage.completion_tokens <= 3


def test_n2(client):
    result = client.completions.create(model="demo", prompt=PROMPT, max_tokens=12, n=2, temperature=1.0, seed=7)
    assert sorted(c.index for c in result.choices) == [0, 1]
    again = client.completions.create(model="demo", prompt=PROMPT, max_tokens=12, n=2, temperature=1.0, seed=7)
    assert [c.text for c in again.choices] == [c.text for c in result.choices]
    chunks = list(client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=6, n=2, stream=True, temperature=1.0, seed=3))
    finished = {c.choices[0].index: c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason}
    assert set(finished) == {0, 1}


def test_stop_string(client):
    full = client.completions.create(model="demo", prompt=PROMPT, max_tokens=32, temperature=0).choices[0].text
    candidates = [full[i:i + 2] for i in range(3, len(full) - 2) if full[i:i + 2].isprintable() and full[i:i + 2].strip()]
    if not candidates:
        pytest.fail(f"no printable stop candidate in {full!r}")
    stop = candidates[0]
    result = client.completions.create(model="demo", prompt=PROMPT, max_tokens=32, temperature=0, stop=[stop])
    assert result.choices[0].finish_reason == "stop"
    assert result.choices[0].text == full[:full.index(stop)]


def test_many_concurrent_clients(client):
    reference = client.completions.create(model="demo", prompt=PROMPT, max_tokens=16, temperature=0).choices[0].text

    def one(i):
        if i % 4 == 0:
            chunks = client.completions.create(model="demo", prompt=PROMPT, max_tokens=16, temperature=0, stream=True)
            return "".join(c.choices[0].text for c in chunks)
        if i % 4 == 1:
            return client.chat.completions.create(model="demo", messages=[{"role": "user", "content": f"n{i}"}],
                                                  max_tokens=8).choices[0].message.content is not None
        return client.completions.create(model="demo", prompt=PROMPT, max_tokens=16, temperature=0).choices[0].text

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(64)))
    for i, value in enumerate(results):
        if i % 4 == 1:
            assert value is True
        else:
            assert value == reference


def test_errors_while_others_run(server, client):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        background = [pool.submit(client.completions.create, model="demo", prompt=PROMPT, max_tokens=64, temperature=0)
                      for _ in range(3)]
        response = post(server, "/v1/completions", '{"model": "demo", "prompt": ')
        assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
        response = post(server, "/v1/completions", {"model": "demo", "prompt": "x", "temperature": "hot"})
        assert response.status_code == 400
        assert response.json()["error"]["message"].startswith("'temperature' must be a number")
        assert response.json()["error"]["param"] == "temperature"
        response = post(server, "/v1/completions", {"model": "demo", "prompt": {"a": 1}})
        assert response.status_code == 400 and "'prompt' must be" in response.json()["error"]["message"]
        response = post(server, "/v1/completions", {"model": "demo", "prompt": "x", "suffix": "y"})
        assert response.status_code == 400 and "suffix" in response.json()["error"]["message"]
        response = post(server, "/v1/chat/completions", {"model": "demo", "messages": [{"role": "robot", "content": "x"}]})
        assert response.status_code == 400 and "messages[0].role" in response.json()["error"]["message"]
        with pytest.raises(openai.NotFoundError) as missing:
            client.completions.create(model="nope", prompt="x")
        assert missing.value.body["message"] == "The model `nope` does not exist."
        with pytest.raises(openai.BadRequestError) as too_long:
            client.completions.create(model="demo", prompt=PROMPT, max_tokens=5000)
        assert "maximum context length is 1024 tokens" in too_long.value.body["message"]
        assert "5000" in too_long.value.body["message"]
        response = post(server, "/v1/completions", {"model": "demo", "prompt": "x" * (2 << 20)})
        assert response.status_code == 413
        assert post(server, "/v1/models", None, key=None).status_code in (401, 404, 405)
        bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.completions.create(model="demo", prompt="x")
        assert httpx.get(server.url + "/v1/models").status_code == 401
        response = post(server, "/v1/completions", {"model": "demo", "prompt": PROMPT, "n": 49})
        assert response.status_code == 429 and response.json()["error"]["code"] == "queue_full"
        texts = [f.result().choices[0].text for f in background]
    assert texts[0] == texts[1] == texts[2]


def metric(server, name, **labels):
    text = httpx.get(server.url + "/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{want}}} not in /metrics:\n{text}")


def wait_until_aborted(server, aborted_before, message, seconds=20):
    """Waits until one more sequence of "demo" has finished with `abort` and none runs."""
    deadline = time.time() + seconds
    while metric(server, "llmux_requests_total", model="demo", finish_reason="abort") <= aborted_before:
        assert time.time() < deadline, message
        time.sleep(0.1)
    while metric(server, "llmux_requests_running", model="demo") > 0:
        assert time.time() < deadline
        time.sleep(0.1)


def test_client_disconnect_mid_stream(server, client):
    aborted = metric(server, "llmux_requests_total", model="demo", finish_reason="abort")
    with httpx.stream("POST", server.url + "/v1/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"model": "demo", "prompt": PROMPT, "max_tokens": 1000, "stream": True, "ignore_eos": True},
                      timeout=60) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    wait_until_aborted(server, aborted, "the disconnected request was not aborted")
    assert client.completions.create(model="demo", prompt=PROMPT, max_tokens=4, temperature=0).choices[0].text is not None


def test_client_disconnect_before_a_whole_answer(server, client):
    """A non-streamed request writes nothing until its answer is whole, so only a check of the
    connection can tell that its client left: the request is aborted, not run to its end."""
    aborted = metric(server, "llmux_requests_total", model="demo", finish_reason="abort")
    finished = metric(server, "llmux_requests_total", model="demo", finish_reason="length")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                   json={"model": "demo", "prompt": PROMPT, "max_tokens": 1000, "ignore_eos": True},
                   timeout=httpx.Timeout(60, read=0.5))
    wait_until_aborted(server, aborted, "the request whose client left was not aborted")
    assert metric(server, "llmux_requests_total", model="demo", finish_reason="length") == finished
    assert metric(server, "llmux_http_responses_total", status="499") >= 1


def test_a_queued_stream_whose_client_left_is_aborted_before_it_runs():
    """One sequence per step: a second streamed request waits behind the first and writes
    nothing, so only a check of the connection can tell that its client left. It is aborted
    while the first still runs, instead of running after it."""
    srv = Server("--demo", "--max-sequences-per-step", "1")
    try:
        first = httpx.stream("POST", srv.url + "/v1/completions",
                             json={"model": "demo", "prompt": PROMPT, "max_tokens": 1000, "stream": True, "ignore_eos": True},
                             timeout=60)
        with first as response:
            lines = response.iter_lines()
            next(lines)  # the first request is running
            with pytest.raises(httpx.ReadTimeout):
                with httpx.stream("POST", srv.url + "/v1/completions",
                                  json={"model": "demo", "prompt": PROMPT, "max_tokens": 4, "stream": True},
                                  timeout=httpx.Timeout(60, read=0.5)) as queued:
                    for _ in queued.iter_lines():
                        pass
            deadline = time.time() + 10
            while metric(srv, "llmux_requests_total", model="demo", finish_reason="abort") < 1:
                assert time.time() < deadline, "the queued request whose client left was not aborted"
                time.sleep(0.1)
            # The first request was still generating all along.
            assert metric(srv, "llmux_requests_running", model="demo") == 1
    finally:
        assert srv.stop() == 0, "".join(srv.stderr_lines[-20:])


def test_metrics(server, client):
    client.completions.create(model="demo", prompt=PROMPT, max_tokens=4, temperature=0)
    assert metric(server, "llmux_generation_tokens_total", model="demo") >= 4
    assert metric(server, "llmux_time_to_first_token_seconds_count", model="demo") >= 1
    assert metric(server, "llmux_inter_token_latency_seconds_count", model="demo") >= 3
    assert metric(server, "llmux_kv_cache_pages") > 0
    assert metric(server, "llmux_requests_waiting", model="demo") >= 0


def test_graceful_shutdown_drains_streams():
    srv = Server("--demo", "--model", "second=" + _demo_path())
    try:
        assert "(models: demo, demo-qwen2, demo-mistral, second)" in "".join(srv.stdout_lines)
        with httpx.stream("POST", srv.url + "/v1/completions",
                          json={"model": "second", "prompt": PROMPT, "max_tokens": 400, "stream": True,
                                "ignore_eos": True}, timeout=60) as response:
            lines = response.iter_lines()
            first = next(lines)
            assert first.startswith("data: ")
            srv.process.send_signal(signal.SIGINT)
            rest = [first] + [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        finish = [json.loads(l[6:])["choices"][0]["finish_reason"] for l in rest if l.startswith("data: {")]
        assert finish[-1] == "length"
        assert srv.process.wait(60) == 0
    finally:
        srv.stop()


def _demo_path():
    return os.path.join(ROOT, "Models", "demo-python")


def test_demo_models_of_every_architecture_answer(client):
    for model in ["demo", "demo-qwen2", "demo-mistral"]:
        chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
        assert chat.choices[0].finish_reason in ("stop", "length")
        assert chat.usage.completion_tokens <= 4
