"""Start-up failures say one thing; no malformed request gets a 5xx."""

import http.client
import json
import random
import subprocess

from conftest import BINARY


def test_a_busy_port_exits_non_zero_with_one_line(server, workdir):
    result = subprocess.run(
        [str(BINARY), "serve", "--port", str(server.port), "--data-dir", str(workdir / "second")],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "already in use" in lines[0]
    assert "use --port " in lines[0]
    assert result.stdout == ""


def test_environment_variables_configure_serve(workdir):
    from conftest import Server, free_port
    probe = Server(workdir / "env-data")
    # The port is what the variable sets, so this test picks one rather than binding port 0.
    probe.port = free_port()
    env = {"EXTERNAL_PROVIDER_PORT": str(probe.port), "EXTERNAL_PROVIDER_DATA_DIR": str(probe.data_dir), "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen([str(BINARY), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe.process = process
        deadline_ok = False
        import time, urllib.request
        for _ in range(300):
            try:
                with urllib.request.urlopen(probe.base_url + "/health", timeout=1) as response:
                    deadline_ok = response.read() == b"ok"
                    break
            except OSError:
                time.sleep(0.05)
        assert deadline_ok
        assert (probe.data_dir / "external-provider.sqlite").exists()
        assert oct(probe.data_dir.stat().st_mode & 0o777) == "0o700"
    finally:
        process.terminate()
        process.wait(timeout=20)


def malformed_bodies(rng):
    valid = {"user": "fuzz", "open_AI": {"api_key": "sk-fuzz", "api_key_name": "n", "organization_key": "o"},
             "schema": {"migration": 1, "semantic": "UNKNOWN"}}
    weird_values = [None, True, 0, -1, 1.5, 1e308, 2**70, "", "\u0000", "\ud7ff", "é" * 300, [], {}, [[[]]], "x" * 2000]
    yield b""
    yield b"\xff\xfe\x00"
    yield b"{" * 5000 + b"}" * 5000
    yield b"[" * 10000
    yield b'{"user": "\\ud800"}'
    yield b'{"user":"a","user":"b","open_AI":{"api_key":"sk-dup"}}'
    for _ in range(300):
        body = json.loads(json.dumps(valid))
        target = rng.choice([body, body["open_AI"], body["schema"]])
        key = rng.choice(list(target.keys()) + ["extra"])
        if rng.random() < 0.2:
            target.pop(key, None)
        else:
            target[key] = rng.choice(weird_values)
        raw = json.dumps(body).encode()
        if rng.random() < 0.2:
            cut = rng.randrange(len(raw))
            raw = raw[:cut] + bytes([rng.randrange(256)]) + raw[cut + 1:]
        yield raw


def test_no_malformed_request_gets_a_5xx(server):
    rng = random.Random(20261130)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    statuses = {}
    for body in malformed_bodies(rng):
        operation = rng.choice(["create", "update", "delete"])
        content_type = rng.choice(["application/json"] * 8 + ["text/plain", "application/json; charset=utf-16"])
        connection.request("POST", f"/external_provider/api_key/{operation}", body=body, headers={"Content-Type": content_type, "X-Application-ID": server.application_id})
        response = connection.getresponse()
        text = response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
        assert response.status < 500, (operation, body[:200], text)
        if response.status != 200:
            assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
            assert text and b"\n" not in text.strip()
    assert set(statuses) <= {200, 400, 404, 409, 413, 415}, statuses
    assert statuses.get(400, 0) > 100, statuses
