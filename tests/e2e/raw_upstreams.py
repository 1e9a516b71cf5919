"""Upstreams that misbehave in ways a real one can, on loopback, speaking HTTP/1.1 over plain sockets so
that each can do what a library server would not: answer late and notice a caller that left, close a
keep-alive connection without saying so, or mark its answers so a test can look for them in a log.
Test fixtures, not part of the product."""

import json
import socket
import threading
import time


def read_request(connection, first=b""):
    """One request from `connection` (its head and a Content-Length body), or None if the peer closed."""
    data = first
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        body += chunk
    return {"method": method, "target": target, "headers": headers, "body": body[:length]}


def answer(connection, status=200, payload=None, extra_headers=()):
    body = json.dumps(payload if payload is not None else {"object": "ok"}).encode()
    head = [f"HTTP/1.1 {status} OK", "Content-Type: application/json", f"Content-Length: {len(body)}", *extra_headers]
    connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)


class RawUpstream:
    """A listener whose every connection is served by `serve(connection)` on a thread of its own."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve_safely, args=(connection,), daemon=True).start()

    def serve_safely(self, connection):
        try:
            self.serve(connection)
        except OSError:
            pass
        finally:
            connection.close()

    def close(self):
        self.closed = True
        self.listener.close()


class SlowUpstream(RawUpstream):
    """Answers each request after `delay` seconds, unless the caller closes the connection first: then it
    counts a cancelled request and answers nothing."""

    def __init__(self, delay=10):
        self.delay = delay
        self.received = 0
        self.cancelled = 0
        super().__init__()

    def serve(self, connection):
        request = read_request(connection)
        if request is None:
            return
        with self.lock:
            self.received += 1
        connection.settimeout(self.delay)
        try:
            if connection.recv(1) == b"":
                with self.lock:
                    self.cancelled += 1
                return
        except socket.timeout:
            pass
        answer(connection, payload={"object": "late"})


class OneRequestPerConnectionUpstream(RawUpstream):
    """Keeps each connection open after its first answer, without `Connection: close`, as keep-alive
    allows, and closes it without a word when a second request arrives on it: a server whose idle timer
    fired just as the request came. It counts the requests it answered."""

    def __init__(self):
        self.answered = 0
        self.dropped = 0
        super().__init__()

    def serve(self, connection):
        request = read_request(connection)
        if request is None:
            return
        with self.lock:
            self.answered += 1
        answer(connection, payload={"object": "answered", "n": self.answered})
        if connection.recv(1):
            with self.lock:
                self.dropped += 1


class MarkedUpstream(RawUpstream):
    """Answers every request with a marker in a response header and in the body, for a test that looks
    for upstream answers in the server's log; records each request's target."""

    def __init__(self, marker):
        self.marker = marker
        self.targets = []
        super().__init__()

    def serve(self, connection):
        while True:
            request = read_request(connection)
            if request is None:
                return
            with self.lock:
                self.targets.append(request["target"])
            answer(connection, payload={"object": "marked", "marker": self.marker}, extra_headers=[f"X-Upstream-Marker: {self.marker}"])


def wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
