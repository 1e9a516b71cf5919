"""What the attack run on the relay found (issue 19), each against the live binary: a scope bypass
through empty path segments, upstream calls that outlive their client, rebuilt upstream paths, log floods,
re-checks that starve, stale pooled connections, trace logs that carry upstream answers, line and
direction controls in user ids, store errors that do not name their cause, and the README's promises."""

import http.client
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest
from openai import OpenAI
from pieces_os_client.exceptions import ApiException

from conftest import BINARY, DATABASE_URL, OPENAI, Server, free_port, new_database, server_environment
from raw_upstreams import MarkedUpstream, OneRequestPerConnectionUpstream, SlowUpstream, wait_for
from sdk_models import SENT_SECRETS, apps_create, create, delete, update

KEY = "sk-proj-FINDINGS-0123456789abcWxyz"


def raw(server, method, target, headers=None, body=None):
    """One request with the target exactly as given, never normalised by a client library."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest(method, target, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    if body is not None:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    answer = (response.status, response.read().decode(errors="replace"))
    connection.close()
    return answer


def spellings(path):
    """The ways a path can be spelled that a router skipping empty segments may read as the same route."""
    first, rest = path.lstrip("/").split("/", 1)
    return [path, "/" + path, "//" + path, "/./" + path.lstrip("/"), f"/{first}%2F{rest}", f"/{first}/%2F{rest}",
            f"//{first}//{rest}"]


# 1. Scope per operation: decided from the route the router matched, never from the raw path.

def test_no_spelling_of_a_path_walks_around_an_applications_scope(server, openai):
    create(server.api(), "auth0|scoped", api_key=KEY)
    keys_only = apps_create(server, "keys-only-scope")
    relay_only = apps_create(server, "relay-only-scope", "--scope", "relay")
    listing = json.dumps({"user": "auth0|scoped"}).encode()
    writes = {
        "/external_provider/api_key/create": {"user": "auth0|new", "open_AI": {"api_key": "sk-proj-bypass-0123456789abWxyz"}},
        "/external_provider/api_key/update": {"user": "auth0|scoped", "open_AI": {"api_key_name": "bypassed"}},
        "/external_provider/api_key/delete": {"user": "auth0|scoped", "open_AI": True},
    }
    models_mark, relayed_mark = openai.mark(), len(openai.relayed)
    answers = {}
    for target in spellings("/open_ai/models/list"):
        answers[target] = raw(server, "POST", target, {"X-Application-ID": keys_only, "Content-Type": "application/json"}, listing)
    for target in spellings("/open_ai/v1/models"):
        answers[target] = raw(server, "GET", target, {"X-Application-ID": keys_only, "X-User-ID": "auth0|scoped"})
    for path, body in writes.items():
        for target in spellings(path):
            answers[target] = raw(server, "POST", target, {"X-Application-ID": relay_only, "Content-Type": "application/json"},
                                  json.dumps(body).encode())
    allowed = [(target, status) for target, (status, _) in answers.items() if status not in (400, 403, 404)]
    assert allowed == [], f"a request outside its application's scope got through: {allowed}"
    # The plain spelling of each is refused for its scope, by name.
    assert answers["/open_ai/models/list"][0] == 403 and "lacks the 'relay' scope" in answers["/open_ai/models/list"][1]
    assert answers["/external_provider/api_key/create"][0] == 403 and "lacks the 'keys' scope" in answers["/external_provider/api_key/create"][1]
    # Nothing reached OpenAI with the user's key, and nothing changed.
    assert openai.seen_since(models_mark) == [] and openai.relayed[relayed_mark:] == []
    stored = update(server.api(), "auth0|scoped").metadata.open_ai
    assert stored.api_key_name is None and stored.api_key == "sk-...Wxyz"


# 2. A client that leaves before the answer begins cancels the upstream call and frees its slot.

def test_a_client_that_leaves_before_the_answer_cancels_the_upstream_request(workdir):
    slow = SlowUpstream(delay=10)
    server = Server(workdir / "leave", ["--no-verify-keys", "--openai-base-url", slow.base_url, "--max-connections", "2"]).start()
    try:
        create(server.api(), "auth0|leaver", api_key=KEY)
        clients = []
        for _ in range(2):
            client = socket.create_connection(("127.0.0.1", server.port))
            body = b'{"model":"gpt-4o","messages":[]}'
            client.sendall(b"POST /open_ai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Application-ID: %s\r\n"
                           b"X-User-ID: auth0|leaver\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                           % (server.port, server.application_id.encode(), len(body), body))
            clients.append(client)
        assert wait_for(lambda: slow.received == 2, 5), "the requests did not reach the upstream"
        left = time.monotonic()
        for client in clients:
            client.close()
        assert wait_for(lambda: slow.cancelled == 2, 1.0), f"{slow.cancelled} of 2 upstream requests were cancelled within 1 s"
        # Both slots are free again.
        deadline = left + 1.5
        while True:
            try:
                with urllib.request.urlopen(server.base_url + "/health", timeout=1) as response:
                    assert response.read() == b"ok"
                break
            except OSError:
                assert time.monotonic() < deadline, "the connection slots stayed taken after their clients left"
                time.sleep(0.05)
    finally:
        server.stop()
        slow.close()


# 3. The upstream path is the route's remainder joined to the base URL's path, and nothing else.

def test_the_upstream_path_is_never_rebuilt_into_another(workdir):
    upstream = MarkedUpstream("path-check")
    server = Server(workdir / "paths", ["--no-verify-keys", "--openai-base-url", upstream.base_url + "/gateway"]).start()
    try:
        create(server.api(), "auth0|paths", api_key=KEY)
        headers = {"X-Application-ID": server.application_id, "X-User-ID": "auth0|paths"}
        for target in ["//open_ai/v1/models", "/open_ai//v1/models", "/open_ai/v1//models", "/open_ai/v1/../../admin",
                       "/open_ai/v1/./models", "/open_ai/v1/%2e%2e/admin", "/open_ai/v1/files%2F..%2Fadmin", "/open_ai/v1/a%5Cb",
                       "/open_ai/v1/models/"]:
            status, text = raw(server, "GET", target, headers)
            assert status == 400 and "dot segments" in text, (target, status, text)
        assert upstream.targets == []
        # A plain path goes under the base URL's own path, with its query as sent.
        assert raw(server, "GET", "/open_ai/v1/models/gpt-4o%3Abeta?limit=2", headers)[0] == 200
        assert upstream.targets == ["/gateway/v1/models/gpt-4o%3Abeta?limit=2"]
    finally:
        server.stop()
        upstream.close()


# 4. Refused requests do not flood the log: paths are cut, and an address over the limit gets a summary.

def test_refused_requests_cannot_flood_the_log(workdir):
    server = Server(workdir / "flood").start()
    try:
        # Under the relay's route, so that the request reaches the application id check.
        long_path = "/open_ai/v1" + "/x" * 30_000
        before = server.log_path.stat().st_size
        statuses = [raw(server, "POST", long_path, {"X-Application-ID": "not-a-registered-id"})[0] for _ in range(100)]
        assert statuses.count(401) == 20 and statuses.count(429) == 80
        grown = server.log_path.stat().st_size - before
        # 100 requests with 60 KB paths: 6 MB of log before; now 20 request lines with the path cut at 256 bytes.
        assert grown < 30_000, f"the log grew by {grown} bytes"
        with urllib.request.urlopen(server.base_url + "/metrics", timeout=5) as response:
            assert "external_provider_refused_over_limit_total 80" in response.read().decode()
    finally:
        server.stop()
    log = server.log_since_launch()
    assert "…(cut; 60011 bytes)" in log
    summaries = [line for line in log.splitlines() if "refused requests from an address over the failed-attempt limit" in line]
    assert len(summaries) == 1 and "refused=80" in summaries[0], summaries


# 5. Re-checks: keys whose check gets no answer are put off, and the others keep their turn.

def test_failing_rechecks_do_not_starve_the_other_keys(workdir):
    data = workdir / "recheck"
    unchecked = Server(data, ["--no-verify-keys"]).start()
    try:
        for index in range(4):
            create(unchecked.api(), f"auth0|failing-{index}", api_key=f"sk-proj-error500-{index}-0123456789Wxyz")
        for index in range(8):
            create(unchecked.api(), f"auth0|good-{index}", api_key=f"sk-proj-good-{index}-0123456789abWxyz")
    finally:
        unchecked.stop()
    mark = OPENAI.mark()
    checking = Server(data, ["--recheck-interval", "1"]).start()
    try:
        def healths():
            listed = checking.cli("keys", "list", "--json")
            return {key["user"]: key["health"] for key in json.loads(listed.stdout)}
        assert wait_for(lambda: all(health == "valid" for user, health in healths().items() if "good" in user), 12), healths()
        checks = [authorization for authorization, _ in OPENAI.seen_since(mark)]
        failing = [check for check in checks if "error500" in (check or "")]
        # Each failing key was tried once, then put off for a minute: 4 checks, not all of them.
        assert len(failing) == 4, f"{len(failing)} checks went to the 4 failing keys"
        assert all(health == "unverified" for user, health in healths().items() if "failing" in user)
    finally:
        checking.stop()


# 6. A pooled connection the upstream closed is not a 502: the request goes again on a new connection.

def test_a_connection_the_upstream_closed_meanwhile_is_not_a_failure(workdir):
    upstream = OneRequestPerConnectionUpstream()
    server = Server(workdir / "stale", ["--no-verify-keys", "--openai-base-url", upstream.base_url]).start()
    try:
        create(server.api(), "auth0|stale", api_key=KEY)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        statuses = []
        for index in range(60):
            body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": f"question {index}"}]}).encode()
            connection.request("POST", "/open_ai/v1/chat/completions", body=body,
                               headers={"Content-Type": "application/json", "X-Application-ID": server.application_id,
                                        "X-User-ID": "auth0|stale"})
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        assert statuses == [200] * 60, f"{60 - statuses.count(200)} of 60 failed: {sorted(set(statuses))}"
        # Each request was answered once: a retry went only where nothing had been answered.
        assert upstream.answered == 60
    finally:
        server.stop()
        upstream.close()


# 7. Trace logs never carry an upstream answer's head or body.

def test_trace_logs_carry_no_upstream_answer(workdir):
    marker = "upstream-marker-" + os.urandom(6).hex()
    upstream = MarkedUpstream(marker)
    server = Server(workdir / "trace", ["--no-verify-keys", "--openai-base-url", upstream.base_url]).start()
    try:
        create(server.api(), "auth0|trace", api_key=KEY)
        client = OpenAI(base_url=f"{server.base_url}/open_ai/v1", api_key=server.application_id,
                        default_headers={"X-User-ID": "auth0|trace"}, max_retries=0, timeout=30)
        assert client.models.with_raw_response.list().headers["x-upstream-marker"] == marker
    finally:
        server.stop()
        upstream.close()
    log = server.log_since_launch()
    assert "trace" in log
    for form in (marker, marker.encode().hex(), " ".join(f"{byte:02x}" for byte in marker.encode())):
        assert form not in log


# 8. Line and direction controls: refused in user ids, escaped in every log format.

CONTROLS = ["\u2028", "\u2029", "\u202e"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_line_and_direction_controls_never_reach_a_log_line_raw(workdir, log_format):
    server = Server(workdir / f"controls-{log_format}", ["--log-format", log_format]).start()
    try:
        for control in CONTROLS:
            with pytest.raises(ApiException) as refused:
                create(server.api(), f"auth0|evil{control}user=admin", api_key=KEY)
            assert refused.value.status == 400 and "Field 'user'" in refused.value.body
        # Raw UTF-8 in a path and in headers, past any client library's encoding.
        for control in CONTROLS:
            with socket.create_connection(("127.0.0.1", server.port)) as client:
                client.sendall(f"GET /health/{control}x HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
                               + f"X-User-ID: a{control}b\r\nX-Request-ID: r{control}\r\nConnection: close\r\n\r\n".encode())
                while client.recv(65536):
                    pass
        created = create(server.api(), "auth0|plain", api_key=KEY)
        assert created.metadata.open_ai.api_key == "sk-...Wxyz"
    finally:
        server.stop()
    log = server.log_since_launch()
    assert "http.path" in log
    for control in CONTROLS:
        assert control not in log, f"U+{ord(control):04X} reached the log raw"
    if log_format == "json":
        for line in log.splitlines():
            if line.startswith("{"):
                json.loads(line)


# 9. Store errors name their cause.

postgres_only = pytest.mark.skipif(not DATABASE_URL, reason="needs the test PostgreSQL cluster")


def serve_fails(workdir, database_url):
    key_file = workdir / "master.key"
    if not key_file.exists():
        key_file.write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
        key_file.chmod(0o600)
    started = time.monotonic()
    result = subprocess.run([str(BINARY), "serve", "--port", str(free_port()), "--database-url", database_url,
                             "--master-key-file", str(key_file)], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL, env=server_environment())
    assert result.returncode != 0
    return result.stderr.strip().splitlines()[-1], time.monotonic() - started


@postgres_only
def test_store_errors_name_their_cause(workdir):
    base, _, _ = DATABASE_URL.partition("?")
    root = base.rsplit("/", 1)[0]
    refused, _ = serve_fails(workdir, f"postgres://postgres@127.0.0.1:{free_port()}/postgres?sslmode=disable")
    assert "refused the connection" in refused, refused
    missing, _ = serve_fails(workdir, f"{root}/no_such_database_here?sslmode=disable")
    assert "has no database 'no_such_database_here'" in missing, missing
    tls, _ = serve_fails(workdir, f"{root}/postgres?sslmode=require")
    assert "does not offer TLS" in tls, tls
    subprocess.run(["psql", DATABASE_URL, "-q", "-c", "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nologin') "
                    "THEN CREATE ROLE nologin NOLOGIN; END IF; END $$"], check=True, capture_output=True)
    denied, _ = serve_fails(workdir, f"postgres://nologin@{root.split('@', 1)[1]}/postgres?sslmode=disable")
    assert "refused the credentials of user 'nologin'" in denied, denied
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        quiet, _ = serve_fails(workdir, f"postgres://postgres@127.0.0.1:{silent.getsockname()[1]}/postgres?sslmode=disable")
        assert "did not answer" in quiet, quiet
    finally:
        silent.close()


# 10. What the README says holds.

def test_a_bound_application_may_change_its_own_users_keys_only(server):
    bound = apps_create(server, "bound-keys", "--user", "auth0|mine", "--scope", "keys")
    create(server.api(application_id=bound), "auth0|mine", api_key=KEY)
    create(server.api(), "auth0|theirs", api_key=KEY)
    for attempt in (lambda api: create(api, "auth0|other", api_key=KEY),
                    lambda api: update(api, "auth0|theirs", {"api_key_name": "taken"}),
                    lambda api: delete(api, "auth0|theirs", True)):
        with pytest.raises(ApiException) as refused:
            attempt(server.api(application_id=bound))
        assert refused.value.status == 403 and "bound to one user" in refused.value.body
    assert update(server.api(), "auth0|theirs").metadata.open_ai.api_key_name is None


def test_the_key_api_takes_the_application_id_as_a_bearer_token(server):
    body = json.dumps({"user": "auth0|bearer", "open_AI": {"api_key": KEY}}).encode()
    status, _ = raw(server, "POST", "/external_provider/api_key/create",
                    {"Authorization": f"Bearer {server.application_id}", "Content-Type": "application/json"}, body)
    assert status == 200


def test_a_revoked_id_is_refused_within_a_second_of_the_revocation(server):
    doomed = apps_create(server, "doomed", "--scope", "keys")
    body = json.dumps({"user": "auth0|nobody-here"}).encode()
    headers = {"X-Application-ID": doomed, "Content-Type": "application/json"}
    assert raw(server, "POST", "/external_provider/api_key/update", headers, body)[0] == 404
    server.cli("apps", "revoke", "doomed")
    revoked = time.monotonic()
    # Keep asking: every request sent a second or more after the revocation returned is refused.
    while time.monotonic() - revoked < 1.2:
        sent = time.monotonic()
        status = raw(server, "POST", "/external_provider/api_key/update", headers, body)[0]
        if sent - revoked >= 1.0:
            # Refused: 401, or 429 once the refusals pass the failed-attempt limit.
            assert status in (401, 429), f"accepted {sent - revoked:.3f} s after the revocation"


def test_migrate_takes_the_store_options_every_command_takes(server, workdir):
    result = server.cli("migrate", check=False)
    assert result.returncode == 0, result.stderr
    assert "data version 6" in result.stdout
