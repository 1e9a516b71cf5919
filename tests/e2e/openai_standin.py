"""A stand-in for OpenAI's GET /v1/models on loopback, answering as OpenAI does. A test fixture, not part
of the product. The key picks the answer: `invalid` -> 401 invalid_api_key, `slow` -> no answer for 4 s (servers check with a 2 s timeout),
`error500` -> 500, `ratelimit` -> 429, `redirect` -> 302 (and so does the relayed path `/v1/redirected`), to `/elsewhere`, which records what reaches it; any other key is valid, unless the organization
is `org-wrong` (401 mismatched_organization). It records the credentials each request carried.

For the relay it also answers POST /v1/chat/completions (plain, or streamed as server-sent events 100 ms
apart, noting when it sent each and whether the client went away), POST /v1/files (multipart), and any
other path with 404; it records every relayed request's method, path, query, headers and body size."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# Where every redirect points: what arrives here was sent by a client that followed one.
REDIRECT_TARGET = "/elsewhere"
MODELS = ["gpt-4o", "gpt-4o-mini-2024-07-18", "gpt-3.5-turbo", "o3", "text-embedding-3-small", "whisper-1", "dall-e-3"]


# The usage every completion reports: (input, output, cached), cached being part of input as OpenAI counts.
USAGE = (23, 8, 5)


def usage():
    prompt, completion_tokens, cached = USAGE
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached}, "completion_tokens_details": {"reasoning_tokens": 0}}


def completion(request, text):
    return {"id": "chatcmpl-standin", "object": "chat.completion", "created": 1715367049, "model": request.get("model", "gpt-4o"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage()}


class StandInOpenAI:
    def __init__(self):
        self.requests = []
        self.relayed = []
        self.redirect_target_hits = []
        self.streams = []
        self.cut_short = 0
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith(REDIRECT_TARGET):
                    return self.redirect_target_reached()
                if self.path.startswith("/v1/") and self.path != "/v1/models":
                    return self.relayed_request()
                if self.path != "/v1/models":
                    return self.reply(404, {"error": {"message": "not found", "type": "invalid_request_error", "code": None}})
                authorization = self.headers.get("Authorization")
                organization = self.headers.get("OpenAI-Organization")
                with standin._lock:
                    standin.requests.append((authorization, organization))
                key = (authorization or "").removeprefix("Bearer ")
                if "slow" in key:
                    time.sleep(4)
                if "invalid" in key or not key:
                    return self.error(401, "invalid_api_key", f"Incorrect API key provided: {key[:3]}***{key[-4:]}.")
                if "error500" in key:
                    return self.error(500, None, "The server had an error while processing your request.")
                if "ratelimit" in key:
                    return self.error(429, "rate_limit_exceeded", "Rate limit reached.")
                if "redirect" in key:
                    return self.redirect()
                if organization == "org-wrong":
                    return self.error(401, "mismatched_organization", "OpenAI-Organization header should match organization for API key")
                self.reply(200, {"object": "list", "data": [
                    {"id": model, "object": "model", "created": 1715367049, "owned_by": "system"} for model in MODELS]})

            def do_POST(self):
                if self.path.startswith(REDIRECT_TARGET):
                    return self.redirect_target_reached()
                self.relayed_request()

            def redirect(self):
                self.send_response(302)
                self.send_header("Location", REDIRECT_TARGET)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def redirect_target_reached(self):
                # Recorded with whatever credentials came along: a followed redirect would carry the key here.
                with standin._lock:
                    standin.redirect_target_hits.append(dict(self.headers.items()))
                self.reply(200, {"object": "elsewhere"})

            def do_DELETE(self):
                self.relayed_request()

            def read_body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        line = self.rfile.readline().strip()
                        if not line:  # the sender cut the stream short
                            raise ConnectionResetError("chunked body cut short")
                        size = int(line, 16)
                        if size == 0:
                            self.rfile.readline()
                            return body
                        body += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def relayed_request(self):
                try:
                    self.answer_relayed()
                except ConnectionResetError:
                    with standin._lock:
                        standin.cut_short += 1

            def answer_relayed(self):
                if self.path == "/v1/early-answer":
                    # Answers before reading the body, as nginx's `return` does, then reads it anyway.
                    self.reply(200, {"object": "early"})
                    self.read_body()
                    return
                body = self.read_body()
                path, _, query = self.path.partition("?")
                record = {"method": self.command, "path": path, "query": query, "headers": dict(self.headers.items()),
                          "body": body}
                with standin._lock:
                    standin.relayed.append(record)
                key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                # A key OpenAI accepted when it was stored, and refuses now (expired, revoked).
                if "invalid" in key or "revoked" in key:
                    return self.error(401, "invalid_api_key", f"Incorrect API key provided: {key[:3]}***{key[-4:]}.")
                if path == "/v1/redirected":
                    return self.redirect()
                if path == "/v1/chat/completions":
                    request = json.loads(body)
                    if request.get("model") == "slow-model":
                        time.sleep(3)
                    if "stream_options" in request and not request.get("stream"):
                        return self.reply(400, {"error": {"message": "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                                          "type": "invalid_request_error", "param": "stream_options", "code": None}})
                    if request.get("stream"):
                        return self.stream_completion(request)
                    return self.reply(200, completion(request, "Hello from the stand-in."))
                if path == "/v1/files":
                    filename = body.split(b'filename="', 1)[1].split(b'"', 1)[0].decode() if b'filename="' in body else "?"
                    return self.reply(200, {"id": "file-standin", "object": "file", "bytes": len(body), "created_at": 1715367049,
                                            "filename": filename, "purpose": "assistants", "status": "processed"})
                self.error(404, "unknown_url", f"Unknown request URL: {self.command} {path}.")

            def stream_completion(self, request):
                events = int(request.get("n_events", request.get("metadata", {}).get("events", 5)))
                stream = {"sent": [], "client_gone_after": None}
                with standin._lock:
                    standin.streams.append(stream)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    for index in range(events):
                        chunk = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1715367049,
                                 "model": request.get("model", "gpt-4o"),
                                 "choices": [{"index": 0, "delta": {"content": f"word{index} "}, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        stream["sent"].append(time.monotonic())
                        time.sleep(0.1)
                    if (request.get("stream_options") or {}).get("include_usage"):
                        chunk = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1715367049,
                                 "model": request.get("model", "gpt-4o"), "choices": [], "usage": usage()}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    stream["client_gone_after"] = len(stream["sent"])

            def error(self, status, code, message):
                self.reply(status, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})

            def reply(self, status, payload):
                body = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(ThreadingHTTPServer):
            # The default backlog of 5 drops connects when 50 checks arrive at once; the kernel retries them
            # a second later, past the tests' verify timeout.
            request_queue_size = 256

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def seen_since(self, mark):
        with self._lock:
            return list(self.requests[mark:])

    def mark(self):
        with self._lock:
            return len(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
