"""Relay rows for bench/run: a small chat completion (plain, and as a streamed answer) straight to a fast
stand-in upstream, through our relay, and through nginx `proxy_pass` setting the same header, the floor
for a proxy. The upstream is nginx too, answering from memory, so it is never the bottleneck."""

import json
import os
import shutil
import subprocess
import tempfile
import sys
import time
import urllib.request
from pathlib import Path

KEY = "sk-bench-relay-0123456789abcdefWxyz"
COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1715367049, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})
CHUNK = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1715367049, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}]}
# The usage chunk OpenAI ends a stream with when the request asks for it, as every streamed row does.
USAGE_CHUNK = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1715367049, "model": "gpt-4o-mini", "choices": [],
               "usage": {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29}}
# Compact, as OpenAI sends them, and so that the whole stream fits nginx's 4 KiB limit on a `return` text.
STREAM = "".join(f"data: {json.dumps(chunk, separators=(',', ':'))}\\n\\n" for chunk in [CHUNK] * 20 + [USAGE_CHUNK]) + "data: [DONE]\\n\\n"
ANTHROPIC_KEY = "sk-ant-bench-relay-0123456789abcdWxyz"
# Anthropic's stream of a short message, as its documentation shows it: named events, 20 text deltas.
_ANTHROPIC_EVENTS = (
    [("message_start", {"type": "message_start", "message": {"id": "msg_bench", "type": "message", "role": "assistant", "content": [],
                                                             "model": "claude-haiku-4-5", "stop_reason": None,
                                                             "usage": {"input_tokens": 9, "output_tokens": 1}}}),
     ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
    + [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word "}})] * 20
    + [("content_block_stop", {"type": "content_block_stop", "index": 0}),
       ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 20}}),
       ("message_stop", {"type": "message_stop"})])
ANTHROPIC_STREAM = "".join(f"event: {name}\\ndata: {json.dumps(data)}\\n\\n" for name, data in _ANTHROPIC_EVENTS)


def nginx_config(workdir, upstream_port, proxy_port):
    return f"""
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    keepalive_requests 1000000;
    upstream standin {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
    # The stand-in upstream: answers from memory; `?stream=1` gets 20 server-sent events in one body.
    server {{
        listen 127.0.0.1:{upstream_port};
        location = /v1/chat/completions {{
            default_type application/json;
            if ($arg_stream) {{ return 200 '{STREAM}'; }}
            return 200 '{COMPLETION}';
        }}
        # LiteLLM cannot add a query: its streamed model has its own base URL.
        location = /stream/v1/chat/completions {{ default_type text/event-stream; return 200 '{STREAM}'; }}
        location = /v1/models {{ default_type application/json; return 200 '{{"object":"list","data":[]}}'; }}
        location = /v1/messages {{ default_type text/event-stream; return 200 '{ANTHROPIC_STREAM}'; }}
    }}
    # The floor for a proxy: pass through, setting the key.
    server {{
        listen 127.0.0.1:{proxy_port};
        location /open_ai/v1/ {{
            proxy_pass http://standin/v1/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer {KEY}";
            proxy_buffering off;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, workdir, upstream_port, proxy_port):
        if shutil.which("nginx") is None:
            subprocess.run(["bash", "-c", "apt-get update -qq && apt-get install -y -qq nginx"], check=True)
        self.workdir = Path(tempfile.mkdtemp(dir=workdir, prefix="nginx-"))
        config = self.workdir / "nginx.conf"
        config.write_text(nginx_config(self.workdir, upstream_port, proxy_port))
        subprocess.run(["nginx", "-c", str(config), "-p", str(self.workdir)], check=True)
        self.pid = int(_wait_for(self.workdir / "nginx.pid").read_text())

    def stop(self):
        subprocess.run(["kill", str(self.pid)], check=False)


LITELLM_VERSION = "1.108.7"


class LiteLLM:
    """The LiteLLM proxy, which teams run for this today: one worker, the stand-in as its OpenAI, any
    caller authenticated by its master key, as ours is by an application id, logging off. Installed into
    bench/.venv-litellm on first use."""

    MASTER_KEY = "sk-bench-litellm-master-0123456789"

    def __init__(self, root, workdir, upstream_port, port):
        venv = root / "bench" / ".venv-litellm"
        if not (venv / "bin" / "litellm").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"], check=True)
        self.workdir = Path(tempfile.mkdtemp(dir=workdir, prefix="litellm-"))
        config = self.workdir / "config.yaml"
        config.write_text(f"""model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:{upstream_port}/v1", api_key: "{KEY}"}}
  - model_name: gpt-4o-mini-stream
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:{upstream_port}/stream/v1", api_key: "{KEY}"}}
litellm_settings: {{set_verbose: false, json_logs: false}}
general_settings: {{master_key: "{self.MASTER_KEY}"}}
""")
        self.log = open(self.workdir / "litellm.log", "wb")
        self.process = subprocess.Popen(
            [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "LITELLM_LOG": "ERROR", "DISABLE_SCHEMA_UPDATE": "true"})
        self.pid = self.process.pid
        self.version = subprocess.run([str(venv / "bin" / "pip"), "show", "litellm"], capture_output=True, text=True).stdout.split("Version: ")[1].split()[0]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("LiteLLM exited: " + (self.workdir / "litellm.log").read_text()[-2000:])
                time.sleep(0.2)
        raise RuntimeError("LiteLLM did not start within 120 s")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def _wait_for(path, timeout=10):
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return path


def time_to_first_event(port, path, headers, requests=500):
    """Median and p99 milliseconds from sending a streamed chat completion to its first body byte, one
    request at a time on one keep-alive connection."""
    import statistics
    from http.client import HTTPConnection

    body = json.dumps({"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": "Say hello"}]})
    connection = HTTPConnection("127.0.0.1", port, timeout=30)
    samples = []
    for index in range(requests + 50):
        started = time.perf_counter()
        connection.request("POST", path, body, {"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        first = response.read(1)
        elapsed = time.perf_counter() - started
        rest = response.read()
        if response.status != 200 or not (first + rest).startswith(b"data: "):
            raise RuntimeError(f"streamed request failed: {response.status} {(first + rest)[:200]!r}")
        if index >= 50:  # the first 50 warm up
            samples.append(elapsed * 1000)
    connection.close()
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[int(len(samples) * 0.99) - 1]}
