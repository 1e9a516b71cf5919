"""Operating, as an operator sees it: the audit trail, `keys delete`, and /metrics, each against a
running server on either store."""

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from pieces_os_client.exceptions import ApiException

from conftest import BINARY, DATABASE_URL, Server, new_database, server_environment, sqlite_only
from sdk_models import create, update

KEY = "sk-proj-audit-0123456789abcdefWxyz"
SECOND_KEY = "sk-proj-audit-second-0123456789Qrst"


def audit(server, *arguments):
    return json.loads(server.cli("audit", "--json", *arguments).stdout)


def test_every_change_is_in_the_audit_trail_and_no_value_is(server, api):
    create(api, "auth0|audited", api_key=KEY, organization_key="org-audited")
    update(api, "auth0|audited", {"api_key": SECOND_KEY, "api_key_name": "work"})
    deleted = server.cli("keys", "delete", "auth0|audited", "--provider", "openai")
    assert deleted.stdout.strip() == "deleted the OpenAI key of user 'auth0|audited'"

    # The running server sees the delete: the key is gone for the API too.
    with pytest.raises(ApiException) as refused:
        update(api, "auth0|audited", {"api_key_name": "again"})
    assert refused.value.status == 404
    assert not [row for row in json.loads(server.cli("keys", "list", "--json").stdout) if row["user"] == "auth0|audited"]

    entries = audit(server, "--user", "auth0|audited")
    assert [entry["action"] for entry in entries] == ["create", "update", "delete"]
    assert [entry["fields"] for entry in entries] == [
        ["api_key", "organization_key"], ["api_key", "api_key_name"], ["api_key", "api_key_name", "organization_key"]]
    assert [entry.get("verification") for entry in entries] == ["valid", "valid", None]
    assert [entry.get("application") for entry in entries] == ["default", "default", None]
    assert all(len(entry["request_id"]) == 32 for entry in entries[:2]) and "request_id" not in entries[2]

    everything = server.cli("audit").stdout + server.cli("audit", "--json").stdout
    for value in [KEY, SECOND_KEY, "org-audited", server.application_id]:
        assert value not in everything
    assert "(command line)" in server.cli("audit", "--user", "auth0|audited").stdout
    # The application `default` was made at start, and that is in the trail too.
    assert any(entry["action"] == "apps-create" and entry["application"] == "default" for entry in audit(server))

    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert audit(server, "--since", tomorrow) == []
    assert len(audit(server, "--user", "auth0|audited", "--since", "2020-01-01T00:00:00Z")) == 3


def test_admin_commands_refuse_bad_input_in_one_line(server):
    for arguments, message in [
        (["keys", "delete", "auth0|nobody"], "User 'auth0|nobody' is unknown"),
        (["keys", "delete", "auth0|nobody", "--provider", "cohere"], "unknown provider 'cohere'"),
        (["audit", "--since", "yesterday"], "--since: 'yesterday' is not a date"),
    ]:
        result = server.cli(*arguments, check=False)
        assert result.returncode == 1 and result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr
    assert not [entry for entry in audit(server) if entry.get("user") == "auth0|nobody"]


def sample(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[1])
    return None


def test_metrics_count_the_sdk_calls_and_name_nobody(server, api):
    create(api, "auth0|metered", api_key=KEY)
    with pytest.raises(ApiException):
        create(api, "auth0|metered", api_key=KEY)
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=5) as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    assert sample(text, 'external_provider_requests_total{operation="create",status="200"}') == 1
    assert sample(text, 'external_provider_requests_total{operation="create",status="409"}') == 1
    assert sample(text, 'external_provider_key_verifications_total{provider="openai",outcome="accepted"}') == 1
    assert sample(text, 'external_provider_keys{provider="openai",health="valid"}') == 1
    assert sample(text, 'external_provider_request_duration_seconds_count{operation="create"}') == 2
    for private in ["auth0|metered", KEY, server.application_id]:
        assert private not in text


def test_metrics_time_the_relay_and_its_upstream(server):
    from test_relay import relay_client

    create(server.api(), "auth0|relay", api_key=KEY)
    for _ in range(3):
        relay_client(server).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    assert sample(text, 'external_provider_requests_total{operation="relay",status="200"}') == 3
    assert sample(text, 'external_provider_request_duration_seconds_count{operation="relay"}') == 3
    assert sample(text, 'external_provider_upstream_duration_seconds_count{operation="relay",provider="openai"}') == 3


@sqlite_only
def test_no_metrics_turns_the_endpoint_off(server):
    server.stop()
    quiet = Server(server.data_dir, extra_args=["--no-metrics"]).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(quiet.base_url + "/metrics", timeout=5)
        assert missing.value.code == 404
    finally:
        quiet.stop()


def test_every_command_reads_the_store_settings_from_the_environment_as_serve_does(workdir):
    """`apps create` with EXTERNAL_PROVIDER_MASTER_KEY_FILE once ignored the variable: it made a master.key
    in the data dir and sealed under it, and `serve`, given the same variable, refused the store."""
    key_file = workdir / "operator.key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    key_file.chmod(0o600)
    data_dir = workdir / "from-environment"
    environment = {**server_environment(), "EXTERNAL_PROVIDER_DATA_DIR": str(data_dir),
                   "EXTERNAL_PROVIDER_MASTER_KEY_FILE": str(key_file)}
    made = subprocess.run([str(BINARY), "apps", "create", "team"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=environment)
    assert made.returncode == 0, made.stderr
    assert not (data_dir / "master.key").exists()
    listed = subprocess.run([str(BINARY), "apps", "list"], capture_output=True, text=True, stdin=subprocess.DEVNULL, env=environment)
    assert listed.returncode == 0 and "team" in listed.stdout, listed.stderr
    # serve, given the same key by flag, opens the store `apps` made.
    Server(data_dir, ["--master-key-file", str(key_file)]).start().stop()


@pytest.mark.skipif(not DATABASE_URL, reason="needs the test PostgreSQL cluster")
def test_the_readmes_postgresql_set_up_runs_from_the_environment(workdir):
    """The README's several-instances example gives the database and the master key file in the
    environment; `apps create` once refused it for want of a master key."""
    key_file = workdir / "shared.key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    key_file.chmod(0o600)
    environment = {**server_environment(), "DATABASE_URL": new_database(), "EXTERNAL_PROVIDER_MASTER_KEY_FILE": str(key_file)}
    for command in (["migrate"], ["apps", "create", "team-app", "--scope", "keys", "--scope", "relay"], ["apps", "list"]):
        result = subprocess.run([str(BINARY), *command], capture_output=True, text=True, stdin=subprocess.DEVNULL, env=environment)
        assert result.returncode == 0, (command, result.stderr)
    assert "team-app" in result.stdout
