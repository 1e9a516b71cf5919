"""Relay rows for bench/run: a small chat completion (plain, and as a streamed answer) straight to a fast
stand-in upstream, through our relay, and through nginx `proxy_pass` setting the same header, the floor
for a proxy. The upstream is nginx too, answering from memory, so it is never the bottleneck."""

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

KEY = "sk-bench-relay-0123456789abcdefWxyz"
COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1715367049, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})
CHUNK = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1715367049, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}]}
STREAM = "".join(f"data: {json.dumps(CHUNK)}\\n\\n" for _ in range(20)) + "data: [DONE]\\n\\n"


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
        location = /v1/models {{ default_type application/json; return 200 '{{"object":"list","data":[]}}'; }}
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


def _wait_for(path, timeout=10):
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return path
