"""SIGTERM: the listener closes, requests in flight finish (up to --shutdown-timeout), and nothing acknowledged
or half-written is lost."""

import json
import signal
import sqlite3
import threading
import time
import urllib.error
import urllib.request

from openai import OpenAI

from conftest import Server
from sdk_models import SENT_SECRETS, create


def post_create(server, user, key, timeout=10):
    request = urllib.request.Request(
        f"{server.base_url}/external_provider/api_key/create", method="POST",
        data=json.dumps({"user": user, "open_AI": {"api_key": key}}).encode(),
        headers={"Content-Type": "application/json", "X-Application-ID": server.application_id})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def key_of(index):
    key = f"sk-proj-sigterm-0123456789abcdef{index:04d}"
    SENT_SECRETS.add(key)
    return key


def test_sigterm_in_a_stream_of_writes_keeps_every_acknowledged_one_and_nothing_half_written(workdir):
    server = Server(workdir / "data", extra_args=["--shutdown-timeout", "5"]).start()
    application_id = server.application_id
    acknowledged, attempted = [], []

    def write():
        index = 0
        while True:
            user = f"auth0|sigterm-{index}"
            attempted.append(user)
            try:
                status = post_create(server, user, key_of(index))
            except OSError:  # the listener is closed: the server is stopping
                return
            assert status == 200, status
            acknowledged.append(user)
            index += 1

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(1)
    server.process.send_signal(signal.SIGTERM)
    writer.join(timeout=30)
    assert server.process.wait(timeout=20) == 0, server.log_since_launch()[-2000:]
    server.stop()
    with sqlite3.connect(server.data_dir / "external-provider.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    server.start()
    try:
        assert server.application_id == application_id
        stored = {row["user"]: row["api_key"] for row in json.loads(server.cli("keys", "list", "--json").stdout)}
        print(f"\nsigterm: {len(attempted)} writes sent, {len(acknowledged)} acknowledged, {len(stored)} stored")
        assert len(acknowledged) > 10
        assert set(acknowledged) <= set(stored)
        assert set(stored) <= set(attempted)
        # Each stored key is the whole one its request sent: the mask ends with that request's index.
        assert all(masked == "sk-..." + f"{int(user.rsplit('-', 1)[1]):04d}" for user, masked in stored.items())
    finally:
        server.stop()


def relayed_stream(server, events):
    create(server.api(), "auth0|stopping", api_key="sk-proj-stopping-0123456789abcdWxyz")
    client = OpenAI(base_url=f"{server.base_url}/open_ai/v1", api_key=server.application_id,
                    default_headers={"X-User-ID": "auth0|stopping"}, max_retries=0, timeout=30)
    return iter(client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True, metadata={"events": str(events)}))


def read_until_the_end(stream):
    words = []
    try:
        for chunk in stream:
            words.append(chunk.choices[0].delta.content)
    except Exception:  # the server cut the stream
        pass
    return words


def test_a_stream_in_flight_at_sigterm_finishes_within_the_timeout(workdir):
    server = Server(workdir / "data", extra_args=["--shutdown-timeout", "10"]).start()
    stream = relayed_stream(server, events=10)  # one second of events
    first = next(stream)
    server.process.send_signal(signal.SIGTERM)
    words = [first.choices[0].delta.content] + read_until_the_end(stream)
    assert server.process.wait(timeout=20) == 0
    server.stop()
    assert words == [f"word{index} " for index in range(10)]


def test_a_stream_still_open_at_the_timeout_is_cut_and_the_server_exits(workdir):
    server = Server(workdir / "data", extra_args=["--shutdown-timeout", "1"]).start()
    stream = relayed_stream(server, events=100)  # ten seconds of events
    next(stream)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    words = read_until_the_end(stream)
    server.process.wait(timeout=20)
    took = time.monotonic() - signalled
    server.stop()
    assert len(words) < 99
    assert took < 5, f"the server took {took:.1f} s to stop"
