"""Stand-ins for Anthropic, Gemini, Mistral and Groq on one loopback server, each under a path of its own
(`/anthropic`, `/gemini`, `/mistral/v1`, `/groq/openai/v1`), so that a server's base URLs point there.
Each follows the provider's documented headers, answers and error shapes (../shared/contract/PROVIDERS.md),
and refuses what the real one refuses. A test fixture, not part of the product.

The key picks the answer: `invalid` -> the provider's refusal of a bad key; `forbidden` -> its refusal
of a key without permission; `nocredit` -> Anthropic's 402; `ratelimit` -> 429; `slow` -> no answer
for 4 s; anything else works. Every request is recorded: provider, method, path, query, headers, body.
Every answer reports usage as the provider does, so that a test can compare what it counted."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ANTHROPIC_MODELS = [("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"), ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-01T00:00:00Z")]
GEMINI_MODELS = [("gemini-2.5-flash", "Gemini 2.5 Flash"), ("gemini-2.5-pro", "Gemini 2.5 Pro")]
OPENAI_STYLE_MODELS = {"mistral": ["mistral-large-latest", "mistral-small-latest"], "groq": ["llama-3.3-70b-versatile", "openai/gpt-oss-20b"]}
ROOTS = {"anthropic": "/anthropic", "gemini": "/gemini", "mistral": "/mistral/v1", "groq": "/groq/openai/v1"}

# The usage every answer reports, by provider: (input, output, cached).
USAGE = {"anthropic": (11, 7, 3), "gemini": (13, 5, 2), "mistral": (17, 9, 0), "groq": (19, 6, 4)}


class ProviderStandIns:
    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        standins = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.dispatch()

            def do_POST(self):
                self.dispatch()

            def dispatch(self):
                split = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                provider = next((name for name, root in ROOTS.items() if split.path.startswith(root + "/")), None)
                record = {"provider": provider, "method": self.command, "path": split.path, "query": split.query,
                          "headers": {name.lower(): value for name, value in self.headers.items()}, "body": body}
                with standins.lock:
                    standins.requests.append(record)
                if provider is None:
                    return self.reply(404, {"error": "no such stand-in"})
                path = split.path[len(ROOTS[provider]):]
                getattr(self, provider)(path, parse_qs(split.query), record["headers"], body)

            # Anthropic: x-api-key and anthropic-version, no Origin, no bearer token.
            def anthropic(self, path, query, headers, body):
                def error(status, kind, message):
                    self.reply(status, {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_standin"})
                if "origin" in headers:
                    return error(401, "authentication_error", "CORS requests are not allowed for this Organization because of its settings.")
                if "authorization" in headers:
                    return error(401, "authentication_error", "invalid bearer token")
                key = headers.get("x-api-key")
                if not key:
                    return error(401, "authentication_error", "x-api-key header is required")
                if "anthropic-version" not in headers:
                    return error(400, "invalid_request_error", "anthropic-version: header is required")
                if "slow" in key:
                    time.sleep(4)
                if "invalid" in key:
                    return error(401, "authentication_error", "invalid x-api-key")
                if "forbidden" in key:
                    return error(403, "permission_error", "Your API key does not have permission to use the specified resource.")
                if "nocredit" in key and path == "/v1/messages":
                    return error(402, "billing_error", "Your credit balance is too low.")
                if "ratelimit" in key:
                    return error(429, "rate_limit_error", "Number of request tokens has exceeded your rate limit.")
                if self.command == "GET" and path == "/v1/models":
                    data = [{"type": "model", "id": id, "display_name": name, "created_at": at} for id, name, at in ANTHROPIC_MODELS]
                    return self.reply(200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})
                if self.command == "POST" and path == "/v1/messages":
                    request = json.loads(body)
                    input_tokens, output_tokens, cached = USAGE["anthropic"]
                    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": cached}
                    message = {"id": "msg_standin", "type": "message", "role": "assistant", "model": request["model"],
                               "content": [{"type": "text", "text": "Hello from the Anthropic stand-in."}],
                               "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
                    if not request.get("stream"):
                        return self.reply(200, message)
                    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
                    events = [("message_start", {"type": "message_start", "message": start}),
                              ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                              ("ping", {"type": "ping"})]
                    events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}})
                               for word in ["Hello ", "from ", "the ", "stand-in."]]
                    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
                               ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                                  "usage": {"output_tokens": output_tokens}}),
                               ("message_stop", {"type": "message_stop"})]
                    return self.stream([f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events])
                if self.command == "POST" and path == "/v1/messages/count_tokens":
                    return self.reply(200, {"input_tokens": USAGE["anthropic"][0]})
                error(404, "not_found_error", f"Not found: {path}")

            # Gemini: x-goog-api-key; a bad key is a 400 with the reason API_KEY_INVALID.
            def gemini(self, path, query, headers, body):
                def error(status, state, message, reason=None):
                    payload = {"error": {"code": status, "message": message, "status": state}}
                    if reason:
                        payload["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                                                        "domain": "googleapis.com"}]
                    self.reply(status, payload)
                key = headers.get("x-goog-api-key") or (query.get("key") or [None])[0]
                if not key:
                    return error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers. Please use an API key.")
                if "slow" in key:
                    time.sleep(4)
                if "invalid" in key:
                    return error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
                if "forbidden" in key:
                    return error(403, "PERMISSION_DENIED", "Permission denied on resource project.")
                if "ratelimit" in key:
                    return error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")
                version, _, rest = path.lstrip("/").partition("/")
                if version not in ("v1", "v1beta"):
                    return error(404, "NOT_FOUND", f"Not found: {path}")
                if self.command == "GET" and rest == "models":
                    return self.reply(200, {"models": [{"name": f"models/{id}", "displayName": name,
                                                        "supportedGenerationMethods": ["generateContent", "countTokens"]}
                                                       for id, name in GEMINI_MODELS]})
                if self.command == "POST" and rest.startswith("models/") and ":" in rest:
                    model, _, method = rest[len("models/"):].partition(":")
                    prompt, output, cached = USAGE["gemini"]
                    def answer(text, final):
                        usage = {"promptTokenCount": prompt, "candidatesTokenCount": output if final else 1,
                                 "totalTokenCount": prompt + (output if final else 1), "cachedContentTokenCount": cached}
                        candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
                        if final:
                            candidate["finishReason"] = "STOP"
                        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}
                    if method == "generateContent":
                        return self.reply(200, answer("Hello from the Gemini stand-in.", True))
                    if method == "streamGenerateContent":
                        if query.get("alt") != ["sse"]:
                            return error(400, "INVALID_ARGUMENT", "this stand-in streams only with alt=sse")
                        words = ["Hello ", "from ", "the ", "stand-in."]
                        return self.stream([f"data: {json.dumps(answer(word, index == len(words) - 1))}\r\n\r\n" for index, word in enumerate(words)])
                error(404, "NOT_FOUND", f"Not found: {path}")

            # Mistral and Groq: OpenAI's protocol behind a bearer token.
            def openai_style(self, provider, path, headers, body):
                key = (headers.get("authorization") or "").removeprefix("Bearer ")
                if not key:
                    return self.reply(401, {"message": "Unauthorized", "request_id": "standin"})
                if "slow" in key:
                    time.sleep(4)
                if "invalid" in key:
                    if provider == "mistral":
                        return self.reply(401, {"detail": "Unauthorized"})
                    return self.reply(401, {"error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}})
                if "ratelimit" in key:
                    return self.reply(429, {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded", "code": "rate_limit_exceeded"}})
                if self.command == "GET" and path == "/models":
                    return self.reply(200, {"object": "list", "data": [{"id": id, "object": "model", "created": 1715367049, "owned_by": provider}
                                                                       for id in OPENAI_STYLE_MODELS[provider]]})
                if self.command == "POST" and path == "/chat/completions":
                    request = json.loads(body)
                    prompt, completion, cached = USAGE[provider]
                    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                             "prompt_tokens_details": {"cached_tokens": cached}}
                    base = {"id": "chatcmpl-standin", "created": 1715367049, "model": request["model"]}
                    if not request.get("stream"):
                        return self.reply(200, dict(base, object="chat.completion", usage=usage, choices=[
                            {"index": 0, "message": {"role": "assistant", "content": f"Hello from the {provider} stand-in."}, "finish_reason": "stop"}]))
                    chunks = [dict(base, object="chat.completion.chunk", choices=[{"index": 0, "delta": {"content": word}, "finish_reason": None}])
                              for word in ["Hello ", "from ", "the ", "stand-in."]]
                    # Unasked, Mistral's last chunk carries the usage, and Groq's has it under `x_groq`.
                    chunks[-1]["choices"][0]["finish_reason"] = "stop"
                    if provider == "mistral":
                        chunks[-1]["usage"] = usage
                    else:
                        chunks[-1]["x_groq"] = {"id": "req_standin", "usage": usage}
                    return self.stream([f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"])
                self.reply(404, {"error": {"message": f"Unknown request URL: {path}", "type": "invalid_request_error", "code": "unknown_url"}})

            def mistral(self, path, query, headers, body):
                self.openai_style("mistral", path, headers, body)

            def groq(self, path, query, headers, body):
                self.openai_style("groq", path, headers, body)

            def reply(self, status, payload):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def stream(self, events, pause=0.05):
                """Server-sent events, each flushed on its own and `pause` apart, with no length: the
                connection closes at the end, as a chunked answer's would end."""
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for event in events:
                        self.wfile.write(event.encode())
                        self.wfile.flush()
                        time.sleep(pause)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        class Server(ThreadingHTTPServer):
            request_queue_size = 256
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def base_url_flags(self):
        """The `serve` flags that point every provider but OpenAI here."""
        flags = []
        for provider, root in ROOTS.items():
            flags += [f"--{provider}-base-url", self.origin + root]
        return flags

    def mark(self):
        with self.lock:
            return len(self.requests)

    def since(self, mark, provider=None):
        with self.lock:
            return [request for request in self.requests[mark:] if provider is None or request["provider"] == provider]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
