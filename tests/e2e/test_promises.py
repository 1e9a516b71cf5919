"""README promises that had no test of their own: the failed-id limit is per address, over real sockets;
`--allow-host` on a running server; the admin commands as processes against a running server; and an
online backup of the store, restored and served."""

import base64
import http.client
import json
import os
import shutil
import subprocess
import time

import pytest
from pieces_os_client.exceptions import ApiException

from conftest import Server, sqlite_only
from sdk_models import SENT_SECRETS, create, update

KEY = "sk-proj-PROMISES-0123456789abcdefWxyz"


def post_from(server, source, application_id, host=None):
    """A create sent from `source` (a loopback address of its own) with `application_id`."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30, source_address=(source, 0))
    body = json.dumps({"user": "auth0|limited", "open_AI": {"api_key": KEY}})
    headers = {"Content-Type": "application/json", "X-Application-ID": application_id}
    if host:
        headers["Host"] = host
    connection.request("POST", "/external_provider/api_key/create", body, headers)
    response = connection.getresponse()
    answer = response.status, response.getheader("Retry-After"), response.read().decode()
    connection.close()
    return answer


@sqlite_only
def test_the_failed_id_limit_counts_each_address_apart(server):
    SENT_SECRETS.add(KEY)
    for _ in range(20):
        assert post_from(server, "127.0.0.2", "wrong-id")[0] == 401
    status, retry_after, body = post_from(server, "127.0.0.2", "wrong-id")
    assert (status, retry_after) == (429, "60") and "retry after 60 seconds" in body
    # Another address is not limited by the first one's failures.
    assert post_from(server, "127.0.0.3", "wrong-id")[0] == 401
    # And a valid id from the limited address is still served.
    assert post_from(server, "127.0.0.2", server.application_id)[0] == 200


def test_allow_host_lets_a_running_server_answer_to_another_name(workdir):
    plain = Server(workdir / "plain").start()
    try:
        assert post_from(plain, "127.0.0.1", plain.application_id, host="keys.internal")[0] == 403
    finally:
        plain.stop()
    proxied = Server(workdir / "proxied", ["--allow-host", "keys.internal"]).start()
    try:
        # As a proxy sends it: the name alone, or with the proxy's own port.
        assert post_from(proxied, "127.0.0.1", proxied.application_id, host="keys.internal")[0] == 200
        assert post_from(proxied, "127.0.0.1", proxied.application_id, host="keys.internal:8443")[0] == 409
        assert post_from(proxied, "127.0.0.1", proxied.application_id, host="other.internal")[0] == 403
    finally:
        proxied.stop()


@sqlite_only
def test_apps_commands_as_processes_change_what_a_running_server_accepts(server):
    made = server.cli("apps", "create", "ci-bot")
    application_id = made.stdout.strip()
    SENT_SECRETS.add(application_id)
    assert made.returncode == 0 and len(application_id) >= 22 and made.stderr == ""
    assert create(server.api(application_id), "auth0|bot", api_key=KEY).metadata.open_ai.api_key == "sk-...Wxyz"

    listed = server.cli("apps", "list")
    assert listed.returncode == 0 and "ci-bot" in listed.stdout and application_id not in listed.stdout

    taken = server.cli("apps", "create", "ci-bot", check=False)
    assert taken.returncode == 1 and len(taken.stderr.strip().splitlines()) == 1 and "ci-bot" in taken.stderr

    revoked = server.cli("apps", "revoke", "ci-bot")
    assert revoked.returncode == 0
    time.sleep(1.1)  # a revoked id stops working within a second
    with pytest.raises(ApiException) as refused:
        update(server.api(application_id), "auth0|bot")
    assert refused.value.status == 401
    again = server.cli("apps", "revoke", "ci-bot", check=False)
    assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1


@sqlite_only
def test_rotate_master_key_as_a_process(server, workdir):
    create(server.api(), "auth0|rotated", api_key=KEY, organization_key="org-rotated")
    new_key = workdir / "new.key"
    new_key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    new_key.chmod(0o600)

    unreadable = server.cli("rotate-master-key", "--new-key-file", str(workdir / "missing.key"), check=False)
    assert unreadable.returncode == 1 and len(unreadable.stderr.strip().splitlines()) == 1 and "missing.key" in unreadable.stderr

    rotated = server.cli("rotate-master-key", "--new-key-file", str(new_key))
    assert rotated.returncode == 0 and "re-sealed 1 stored key(s)" in rotated.stdout
    assert (server.data_dir / "master.key").read_text().strip() == new_key.read_text().strip()
    # The running server still holds the old key: it refuses to write rather than seal under it.
    with pytest.raises(ApiException) as refused:
        update(server.api(), "auth0|rotated", {"api_key_name": "during"})
    assert refused.value.status == 500
    server.restart()
    kept = update(server.api(), "auth0|rotated", {"api_key_name": "after"})
    assert kept.metadata.open_ai.api_key == "sk-...Wxyz" and kept.metadata.open_ai.organization_key == "org-rotated"


@sqlite_only
def test_an_online_backup_restores_and_serves(server, workdir):
    """The README's own command, `sqlite3 external-provider.sqlite ".backup copy.sqlite"`, run while the
    server runs and after writes through it; the copy restored and served."""
    api = server.api()
    create(api, "auth0|backed-up", api_key=KEY, api_key_name="before")
    copy = workdir / "restored"
    copy.mkdir(mode=0o700)
    backup = subprocess.run(["sqlite3", "external-provider.sqlite", f".backup {copy / 'external-provider.sqlite'}"],
                            cwd=server.data_dir, capture_output=True, text=True, timeout=30)
    assert backup.returncode == 0, backup.stderr
    # The server refuses a store others may read: a restored copy gets the store's own mode.
    (copy / "external-provider.sqlite").chmod(0o600)
    update(api, "auth0|backed-up", {"api_key_name": "after the backup"})
    for name in ["master.key", "application-id"]:
        shutil.copy2(server.data_dir / name, copy / name)
    server.stop()

    restored = Server(copy).start()
    try:
        served = update(restored.api(), "auth0|backed-up")
        assert served.metadata.open_ai.api_key == "sk-...Wxyz" and served.metadata.open_ai.api_key_name == "before"
    finally:
        restored.stop()
