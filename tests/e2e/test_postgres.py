"""Several instances on one PostgreSQL database, and the database going away and coming back."""

import base64
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import BINARY, DATABASE_URL, ROOT, Server, new_database
from sdk_models import SENT_SECRETS

pytestmark = pytest.mark.skipif(DATABASE_URL is None, reason="needs the test command's PostgreSQL cluster")


def post(server, operation, body, application_id, timeout=30):
    """One write over HTTP: (status, text)."""
    request = urllib.request.Request(
        f"{server.base_url}/external_provider/api_key/{operation}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-Application-ID": application_id})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def key(label, index):
    """A key whose last four characters, all a response shows of it, are its index."""
    secret = f"sk-proj-{label}-0123456789abcdef{index:04d}"
    SENT_SECRETS.add(secret)
    return secret


def shown(state, field):
    """A field as a response shows it: the key masked to its last four characters, the rest as they are."""
    value = json.loads(state)["metadata"]["open_AI"].get(field)
    return value[-4:] if field == "api_key" else value


def test_two_instances_on_one_database_lose_no_update(workdir):
    """Three writers, each owning one field of one user, write through two instances at once. After each
    acknowledged write, the writer reads the user back through the other instance: its own value must be
    there. A lost update (another write's transaction putting back the value it read earlier) shows as
    an older value; so does any acknowledged change missing from the final state."""
    database = new_database()
    first = Server(workdir / "first", database_url=database).start()
    second = Server(workdir / "second", database_url=database)
    # Applications live in the database: the second instance knows the first one's.
    (second.data_dir / "application-id").write_text(first.application_id)
    second.start()
    try:
        application_id = first.application_id
        user = "auth0|shared"
        assert post(first, "create", {"user": user, "open_AI": {"api_key": key("shared", 0)}}, application_id)[0] == 200
        rounds = 60
        sent, acknowledged, stale = {}, {}, []

        def writer(server, other, field, value_of):
            for index in range(1, rounds + 1):
                value = value_of(index)
                # A new key or organization is checked with OpenAI before its write; when the other writers
                # change the pair meanwhile three times over, the answer is 409 and the write is sent again.
                for _ in range(50):
                    sent[field] = sent.get(field, 0) + 1
                    status, text = post(server, "update", {"user": user, "open_AI": {field: value}}, application_id)
                    if status != 409:
                        break
                    assert "changed while it was being checked" in text
                assert status == 200, text
                acknowledged[field] = value
                expected = value[-4:] if field == "api_key" else value
                status, state = post(other, "update", {"user": user}, application_id)
                assert status == 200, state
                if shown(state, field) != expected:
                    stale.append((field, expected, shown(state, field)))

        writers = [
            threading.Thread(target=writer, args=(first, second, "api_key_name", lambda i: f"name-{i}")),
            threading.Thread(target=writer, args=(second, first, "organization_key", lambda i: f"org-{i}")),
            threading.Thread(target=writer, args=(first, second, "api_key", lambda i: key("shared", i))),
        ]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        assert len(acknowledged) == 3, "a writer failed"
        listed = json.loads(first.cli("keys", "list", "--json").stdout)
        assert len(listed) == 1
        found = listed[0]
        print(f"\ntwo instances: {sum(sent.values())} writes sent, {3 * rounds} acknowledged, "
              f"{3 * rounds - len(stale)} read back through the other instance, final state holds the last of each")
        assert stale == []
        assert found["api_key_name"] == acknowledged["api_key_name"]
        assert found["organization_key"] == acknowledged["organization_key"]
        assert found["api_key"] == "sk-..." + acknowledged["api_key"][-4:]
        assert found["health"] == "valid"  # each new pair was checked with the stand-in before its write
    finally:
        first.stop()
        second.stop()


def cluster(command):
    subprocess.run([str(ROOT / "scripts" / "postgres-cluster"), command, os.environ["EXTERNAL_PROVIDER_TEST_POSTGRES_DIR"]],
                   check=True, timeout=60)


def test_an_outage_answers_503_keeps_every_acknowledged_write_and_recovers(workdir):
    """Writes run one after another while the cluster is stopped and started again: each gets 200 or a
    503 sentence (never a 500), a write sent while it is down gets that 503 within the store's 5 s,
    /health stays up while /ready says 503 within about a second, every 200 is stored, and writes (and
    /ready) succeed again after."""
    server = Server(workdir / "data", database_url=new_database()).start()
    application_id = server.application_id
    outcomes, stop = [], threading.Event()

    def write():
        index = 0
        while not stop.is_set():
            user = f"auth0|outage-{index}"
            try:
                status, text = post(server, "create", {"user": user, "open_AI": {"api_key": key("outage", index)}}, application_id)
            except OSError as error:  # no answer at all: recorded, and the test fails on it
                status, text = None, repr(error)
            outcomes.append((user, status, text))
            index += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(1)
        cluster("stop")
        try:
            # The cluster stays down for longer than a store operation may wait (5 s): this write meets it.
            started = time.monotonic()
            probe = post(server, "create", {"user": "auth0|probe", "open_AI": {"api_key": key("probe", 0)}}, application_id)
            waited = time.monotonic() - started
            with urllib.request.urlopen(server.base_url + "/health", timeout=5) as health:
                assert health.status == 200
            started = time.monotonic()
            try:
                urllib.request.urlopen(server.base_url + "/ready", timeout=5)
                ready = 200
            except urllib.error.HTTPError as error:
                ready = error.code
            ready_took = time.monotonic() - started
        finally:
            cluster("resume")
        assert ready == 503 and ready_took < 3
        assert probe == (503, "The key store cannot be reached just now; send the request again shortly.")
        assert waited < 8
        recovered = len(outcomes)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(status == 200 for _, status, _ in outcomes[recovered:]):
            time.sleep(0.1)
        time.sleep(1)
    finally:
        stop.set()
        writer.join(timeout=60)
    try:
        statuses = {status for _, status, _ in outcomes}
        unavailable = [text for _, status, text in outcomes if status == 503]
        assert statuses <= {200, 503}, statuses
        assert set(unavailable) <= {"The key store cannot be reached just now; send the request again shortly."}
        assert outcomes[-1][1] == 200, "writes did not recover"
        with urllib.request.urlopen(server.base_url + "/ready", timeout=5) as ready_again:
            assert ready_again.status == 200
        stored = {row["user"] for row in json.loads(server.cli("keys", "list", "--json").stdout)}
        acknowledged = [user for user, status, _ in outcomes if status == 200]
        print(f"\noutage: {len(outcomes)} writes sent, {len(acknowledged)} acknowledged, {len(unavailable)} answered 503, "
              f"{sum(user in stored for user in acknowledged)} of the acknowledged found afterwards")
        assert set(acknowledged) <= stored
    finally:
        server.stop()


def serve_refused(workdir, *arguments):
    """Runs serve expecting it to refuse: its one line on stderr."""
    result = subprocess.run([str(BINARY), "serve", "--port", "0", "--data-dir", str(workdir / "unused"), *arguments],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_instances_that_start_together_migrate_once_and_agree_on_the_master_key(workdir):
    """Rounds of four instances started at once on a new database: all serve, the migration is applied
    once, and the master key is recorded once (they share it)."""
    for round_number in range(3):
        database = new_database()
        servers = [Server(workdir / f"round-{round_number}" / f"instance-{index}", database_url=database) for index in range(4)]
        try:
            for server in servers:
                server.launch()
            for server in servers:
                server.wait_until_healthy()
            applied = subprocess.run(["psql", database, "-At", "-c", "SELECT version, data_version FROM external_provider_migration"],
                                     capture_output=True, text=True, check=True).stdout.split()
            assert applied == ["1|2", "2|3", "3|4", "4|5", "5|6"]
            assert sum("migrated the database" in server.log_since_launch() for server in servers) == 1
            recorded = subprocess.run(["psql", database, "-At", "-c", "SELECT count(*) FROM store_meta WHERE name = 'master_key_id'"],
                                      capture_output=True, text=True, check=True).stdout.strip()
            assert recorded == "1"
        finally:
            for server in servers:
                server.stop()


def test_no_migrate_refuses_an_outdated_database_until_migrate(workdir):
    database = new_database()
    key_file = workdir / "master.key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    key_file.chmod(0o600)
    store = ["--database-url", database, "--master-key-file", str(key_file)]
    line = serve_refused(workdir, *store, "--no-migrate")
    assert "the database is at data version 0, not 6" in line and "external-provider migrate" in line
    migrated = subprocess.run([str(BINARY), "migrate", "--database-url", database], capture_output=True, text=True, check=True)
    assert "applied migration(s) 1, 2, 3, 4, 5" in migrated.stdout
    again = subprocess.run([str(BINARY), "migrate", "--database-url", database], capture_output=True, text=True, check=True)
    assert "up to date" in again.stdout
    server = Server(workdir / "data", extra_args=["--no-migrate", "--master-key-file", str(key_file)], database_url=database)
    try:
        server.start()
        assert "migrated the database" not in server.log_since_launch()
    finally:
        server.stop()


def test_the_master_key_is_given_and_rotates_on_postgres(workdir):
    database = new_database()
    line = serve_refused(workdir, "--database-url", database)
    assert "the master key must be given" in line
    server = Server(workdir / "data", database_url=database).start()
    status, _ = post(server, "create", {"user": "auth0|rotating", "open_AI": {"api_key": key("rotating", 1)}}, server.application_id)
    assert status == 200
    server.stop()
    old_key = workdir / "master.key"
    new_key = workdir / "new.key"
    new_key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    new_key.chmod(0o600)
    rotated = server.cli("rotate-master-key", "--new-key-file", str(new_key))
    assert "re-sealed 1 stored key(s)" in rotated.stdout
    assert "sealed under master key" in serve_refused(workdir, "--database-url", database, "--master-key-file", str(old_key))
    old_key.write_text(new_key.read_text())
    server.start()
    try:
        listed = json.loads(server.cli("keys", "list", "--json").stdout)
        assert [row["api_key"] for row in listed] == ["sk-...0001"]
    finally:
        server.stop()
