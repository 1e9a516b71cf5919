"""A 200 on a write means the change is on disk: at the level of system calls. The crash test (SIGKILL)
shows the server answers only after its commit, but the page cache outlives a killed process, so it
cannot show the commit reached the disk. Here the server runs under strace, and every 200 to a write
must come after a sync of the WAL that followed that write's WAL pages."""

import http.client
import json
import os
import re
import signal
import subprocess
import time

from conftest import Server, sqlite_only
from sdk_models import SENT_SECRETS

WRITES = 12
LINE = re.compile(r"^\d+\s+(?P<time>\d+\.\d+)\s+(?P<call>\w+)\((?P<args>.*)$")


def events(trace_path):
    """(time, kind) for each WAL page write, WAL sync, and 200 answer with a JSON body, in time order."""
    found = []
    for line in trace_path.read_text(errors="replace").splitlines():
        match = LINE.match(line)
        if not match or "resumed>" in line:
            continue
        call, args, at = match["call"], match["args"], float(match["time"])
        if call == "pwrite64" and "-wal>" in args:
            found.append((at, "wal-write"))
        elif call in ("fsync", "fdatasync") and "-wal>" in args:
            found.append((at, "wal-sync"))
        elif call in ("write", "writev", "sendmsg", "sendto") and "HTTP/1.1 200" in args and "application/json" in args:
            found.append((at, "answer-200"))
    return sorted(found)


@sqlite_only
def test_every_200_to_a_write_follows_a_sync_of_that_write(server, workdir):
    server.stop()
    trace = workdir / "trace"
    traced = Server(server.data_dir, wrapper=[
        "strace", "-f", "-ttt", "-y", "-s", "64", "-e", "trace=pwrite64,fsync,fdatasync,write,writev,sendmsg,sendto", "-o", str(trace)])
    traced.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", traced.port, timeout=30)
        for index in range(WRITES):
            key = f"sk-proj-DURABLE-{index:04d}-0123456789abcdef"
            SENT_SECRETS.add(key)
            operation = "create" if index % 2 == 0 else "update"
            body = {"user": f"auth0|durable-{index // 2}", "open_AI": {"api_key": key}}
            connection.request("POST", f"/external_provider/api_key/{operation}", json.dumps(body),
                               {"Content-Type": "application/json", "X-Application-ID": traced.application_id})
            response = connection.getresponse()
            response.read()
            assert response.status == 200
        connection.close()
    finally:
        # SIGTERM to the server itself; strace then exits with its status.
        children = subprocess.run(["pgrep", "-P", str(traced.process.pid)], capture_output=True, text=True).stdout.split()
        for child in children:
            os.kill(int(child), signal.SIGTERM)
        assert traced.process.wait(timeout=20) == 0
        traced.log.close()

    timeline = events(trace)
    answers = [index for index, (_, kind) in enumerate(timeline) if kind == "answer-200"]
    assert len(answers) == WRITES, f"saw {len(answers)} answers to writes in the trace"
    previous = -1
    for answer in answers:
        between = [kind for _, kind in timeline[previous + 1:answer]]
        assert "wal-write" in between, "a write answered 200 wrote nothing to the WAL"
        last_write = max(index for index in range(previous + 1, answer) if timeline[index][1] == "wal-write")
        assert any(kind == "wal-sync" for _, kind in timeline[last_write + 1:answer]), \
            f"answer {answers.index(answer)} went out before its WAL pages were synced"
        previous = answer
