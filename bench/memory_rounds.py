"""RSS of a running server across rounds of many concurrent authenticated 64 KiB bodies.

Each round opens `connections` sockets, sends every request's head and all but the last byte of its
body, so that all of them are held in the server at once, then sends the last bytes and reads every
answer. RSS is read while the bodies are held and after each round. Reports numbers; passes nothing."""

import json
import socket
import sys
import time
from pathlib import Path

BODY_BYTES = 64 * 1024 - 64


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def body(index):
    user = f"memory-{index}"
    head = json.dumps({"user": user, "open_AI": {"api_key_name": "held"}})
    # Whitespace is valid JSON: a body of the full size that the server must read and decode.
    return (head[:-1] + " " * (BODY_BYTES - len(head)) + "}").encode()


def one_round(port, application_id, connections):
    sockets = []
    for index in range(connections):
        payload = body(index)
        request = (
            f"POST /external_provider/api_key/update HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nX-Application-ID: {application_id}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode() + payload
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(request[:-1])
        sockets.append((connection, request[-1:]))
    return sockets


def finish(sockets):
    statuses = {}
    for connection, last in sockets:
        connection.sendall(last)
    for connection, _ in sockets:
        connection.settimeout(60)
        answer = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
        connection.close()
        status = answer[9:12].decode() or "none"
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def measure(pid, port, application_id, rounds=10, connections=1000):
    """Returns RSS (MiB) before, and per round while held and after; and the answers' statuses."""
    report = {"before": rss_mib(pid), "held": [], "after": [], "statuses": {}}
    for _ in range(rounds):
        held = one_round(port, application_id, connections)
        time.sleep(0.5)
        report["held"].append(rss_mib(pid))
        for status, count in finish(held).items():
            report["statuses"][status] = report["statuses"].get(status, 0) + count
        # The server returns free memory within a few seconds of a burst (MemoryTrimmer checks each second).
        time.sleep(3.0)
        report["after"].append(rss_mib(pid))
    return report


if __name__ == "__main__":
    pid, port, data_dir = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    application_id = (data_dir / "application-id").read_text().strip()
    result = measure(pid, port, application_id, rounds=rounds)
    print(json.dumps(result, indent=1))
