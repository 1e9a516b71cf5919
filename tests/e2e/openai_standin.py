"""A stand-in for OpenAI's GET /v1/models on loopback, answering as OpenAI does. A test fixture, not part
of the product. The key picks the answer: `invalid` -> 401 invalid_api_key, `slow` -> no answer for 3 s,
`error500` -> 500, `ratelimit` -> 429, `redirect` -> 302; any other key is valid, unless the organization
is `org-wrong` (401 mismatched_organization). It records the credentials each request carried."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandInOpenAI:
    def __init__(self):
        self.requests = []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/v1/models":
                    return self.reply(404, {"error": {"message": "not found", "type": "invalid_request_error", "code": None}})
                authorization = self.headers.get("Authorization")
                organization = self.headers.get("OpenAI-Organization")
                with standin._lock:
                    standin.requests.append((authorization, organization))
                key = (authorization or "").removeprefix("Bearer ")
                if "slow" in key:
                    time.sleep(3)
                if "invalid" in key or not key:
                    return self.error(401, "invalid_api_key", f"Incorrect API key provided: {key[:3]}***{key[-4:]}.")
                if "error500" in key:
                    return self.error(500, None, "The server had an error while processing your request.")
                if "ratelimit" in key:
                    return self.error(429, "rate_limit_exceeded", "Rate limit reached.")
                if "redirect" in key:
                    self.send_response(302)
                    self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if organization == "org-wrong":
                    return self.error(401, "mismatched_organization", "OpenAI-Organization header should match organization for API key")
                self.reply(200, {"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"}]})

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
