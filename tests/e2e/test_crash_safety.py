"""A 200 means the write is on disk: writers record every acknowledged write while the server is
killed with SIGKILL at random moments; after each restart all of them must be there and SQLite's
integrity check must pass. CI runs 20 rounds; `CRASH_ROUNDS=200 scripts/test` or bench/crash run more."""

import json
import os
import random
import signal
import sqlite3
import threading
import time
from http.client import HTTPConnection, HTTPException

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "20"))
WRITERS = 4


def write_until_refused(server, round_number, writer, acknowledged, lock):
    connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Content-Type": "application/json", "X-Application-ID": server.application_id}
    index = 0
    while True:
        user = f"crash-{round_number}-{writer}-{index}"
        name = f"name-{round_number}-{writer}-{index}"
        body = json.dumps({"user": user, "open_AI": {"api_key": f"sk-crash-{round_number}-{writer}-{index}-0000Wxyz", "api_key_name": name}})
        try:
            connection.request("POST", "/external_provider/api_key/create", body, headers)
            response = connection.getresponse()
            response.read()
        except (OSError, HTTPException):
            # The kill cut the exchange short: not acknowledged, whatever the server had done.
            return
        if response.status == 200:
            with lock:
                acknowledged[user] = name
        index += 1


def stored_name(server, user):
    connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/external_provider/api_key/update", json.dumps({"user": user}),
                       {"Content-Type": "application/json", "X-Application-ID": server.application_id})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        return None
    return json.loads(payload)["metadata"]["open_AI"].get("api_key_name")


def test_every_acknowledged_write_survives_sigkill(workdir):
    from conftest import Server

    rng = random.Random(1130)
    server = Server(workdir / "crash", ["--no-verify-keys"]).start()
    acknowledged, lock = {}, threading.Lock()
    try:
        for round_number in range(ROUNDS):
            before = set(acknowledged)
            writers = [threading.Thread(target=write_until_refused, args=(server, round_number, w, acknowledged, lock))
                       for w in range(WRITERS)]
            for thread in writers:
                thread.start()
            # The kill comes at a random moment after the round's first acknowledgement, so that every
            # round has writes to check however slowly the server started.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with lock:
                    if len(acknowledged) > len(before):
                        break
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.35))
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=10)
            for thread in writers:
                thread.join(timeout=30)

            with sqlite3.connect(server.data_dir / "external-provider.sqlite") as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

            server.start()
            new = [user for user in acknowledged if user not in before]
            assert new, f"round {round_number} acknowledged no write before the kill"
            # This round's writes all, and a sample of earlier rounds' again.
            sample = new + rng.sample(sorted(before), min(len(before), 50))
            missing = [user for user in sample if stored_name(server, user) != acknowledged[user]]
            assert not missing, f"round {round_number}: {len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
    finally:
        server.stop()
    assert len(acknowledged) > ROUNDS * WRITERS
