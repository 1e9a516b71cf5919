"""Operating the server: readiness, and one request log line per request, as text or JSON."""

import http.client
import json
import urllib.request

from conftest import Server
from sdk_models import SENT_SECRETS


def test_ready_and_a_json_request_log_with_the_request_id_echoed(workdir):
    server = Server(workdir / "data", extra_args=["--log-format", "json"]).start()
    try:
        with urllib.request.urlopen(server.base_url + "/ready", timeout=5) as ready:
            assert (ready.status, ready.read()) == (200, b"ready")
        key = "sk-proj-jsonlog-0123456789abcdWxyz"
        SENT_SECRETS.add(key)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("POST", "/external_provider/api_key/create", json.dumps({"user": "auth0|logged", "open_AI": {"api_key": key}}),
                           {"Content-Type": "application/json", "X-Application-ID": server.application_id, "X-Request-ID": "e2e-7"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200 and response.getheader("X-Request-ID") == "e2e-7"
        connection.request("GET", "/health")
        generated = connection.getresponse()
        generated.read()
        assert len(generated.getheader("X-Request-ID")) == 32
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log_since_launch().splitlines() if line.strip()]  # every line is JSON
    requests = [line for line in lines if line["message"] == "request"]
    create = next(line for line in requests if line.get("request.id") == "e2e-7")
    assert create["http.method"] == "POST" and create["http.path"] == "/external_provider/api_key/create"
    assert create["http.status"] == "200" and create["application"] == "default" and float(create["duration_ms"]) >= 0
    assert create["level"] == "info" and create["time"]
    assert all(server.application_id not in json.dumps(line) for line in lines)
    assert any(line["message"].startswith("registered application 'default'") for line in lines)
