"""Starts real `llmux serve` processes for the end-to-end tests."""
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API_KEY = "e2e-secret"


def llmux_binary():
    path = os.environ.get("LLMUX_BIN") or os.path.join(ROOT, ".build", "debug", "llmux")
    if not os.path.exists(path):
        raise RuntimeError(f"{path} does not exist; build it first (swift build) or set LLMUX_BIN")
    return path


class Server:
    """A running `llmux serve` on a free port, its output collected."""

    def __init__(self, *args, port=0, command="serve", pattern=r"LLMux listening on (http://[^ ]+) \(models: (.*)\)"):
        self.process = subprocess.Popen(
            [llmux_binary(), command, "--port", str(port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout_lines = []
        self.stderr_lines = []
        self.url = None
        ready = threading.Event()

        def read_stdout():
            for line in self.process.stdout:
                self.stdout_lines.append(line)
                match = re.match(pattern, line)
                if match:
                    self.url = match.group(1)
                    ready.set()
            ready.set()

        def read_stderr():
            for line in self.process.stderr:
                self.stderr_lines.append(line)

        threading.Thread(target=read_stdout, daemon=True).start()
        threading.Thread(target=read_stderr, daemon=True).start()
        if not ready.wait(120) or self.url is None:
            self.process.kill()
            raise RuntimeError(f"llmux {command} did not start:\n" + "".join(self.stdout_lines + self.stderr_lines))

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture(scope="session")
def server():
    srv = Server("--demo", "--api-key", API_KEY, "--max-queue", "48", "--max-body-size", "1MiB")
    yield srv
    code = srv.stop()
    assert code == 0, "".join(srv.stderr_lines[-20:])


@pytest.fixture(scope="session")
def client(server):
    import openai
    return openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def generate_reference(prompt, max_tokens, logprobs=None):
    """`llmux generate --json` (greedy) on the demo model: the reference for the server path."""
    args = [llmux_binary(), "generate", "--demo", "--prompt", prompt, "--max-tokens", str(max_tokens), "--json"]
    if logprobs is not None:
        args += ["--logprobs", str(logprobs)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)
