"""The application id, the browser defences and the data dir, against the live server."""

import base64
import http.client
import os
import sqlite3
import subprocess

import pytest
from pieces_os_client.exceptions import NotFoundException, UnauthorizedException

from conftest import DATABASE_URL, sqlite_only
from sdk_models import create, delete, update

UNAUTHORIZED = "Invalid Authentication: missing or unknown X-Application-ID"


@sqlite_only
def test_the_default_application_id_is_written_for_local_clients(server):
    path = server.data_dir / "application-id"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(server.data_dir.stat().st_mode & 0o777) == "0o700"
    assert len(server.application_id) == 22
    assert "registered application 'default'" in server.log_text()
    # stderr is also the log stream, which a journal keeps: the banner names the file, never the id.
    assert str(server.data_dir / "application-id") in server.log_text()
    assert server.application_id not in server.log_text()


@pytest.mark.parametrize("application_id", [None, "unknown-application-id"])
def test_a_missing_or_unknown_application_id_is_unauthorized(server, application_id):
    with pytest.raises(UnauthorizedException) as caught:
        create(server.api(application_id=application_id), "auth0|intruder", api_key="sk-intruder-0000000000")
    assert caught.value.status == 401
    assert caught.value.body == UNAUTHORIZED
    assert caught.value.data == UNAUTHORIZED
    with pytest.raises(NotFoundException):
        update(server.api(), "auth0|intruder")


def raw_post(server, headers, body=b'{"user":"auth0|ada","open_AI":{"api_key":"sk-raw-0000000000"}}'):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", "/external_provider/api_key/create", skip_host=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    return response.status, response.getheader("Content-Type"), response.read().decode()


def test_rebinding_hosts_and_foreign_origins_are_forbidden_and_change_nothing(server):
    good = {"Host": f"localhost:{server.port}", "Content-Type": "application/json", "X-Application-ID": server.application_id}
    for headers in [
        {**good, "Host": f"attacker.example:{server.port}"},
        {**good, "Host": f"127.0.0.1.nip.io:{server.port}"},
        {**good, "Host": "localhost:80"},
        {**good, "Origin": "https://evil.example"},
        {**good, "Origin": "null"},
    ]:
        status, content_type, body = raw_post(server, headers)
        assert (status, content_type) == (403, "text/plain; charset=utf-8"), body
    # A form post a page could make without a preflight: no id can be attached, and text/plain is refused.
    status, _, _ = raw_post(server, {"Host": f"localhost:{server.port}", "Content-Type": "text/plain"})
    assert status == 401
    with pytest.raises(NotFoundException):
        update(server.api(), "auth0|ada")
    status, _, _ = raw_post(server, good)
    assert status == 200


def test_an_allowed_origin_gets_cors_headers(workdir):
    from conftest import Server

    server = Server(workdir / "cors", ["--allow-origin", "https://app.example.com"]).start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("OPTIONS", "/external_provider/api_key/create", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-application-id"})
        response = connection.getresponse()
        response.read()
        assert response.status == 204
        assert response.getheader("Access-Control-Allow-Origin") == "https://app.example.com"
        status, _, _ = raw_post(server, {"Host": f"127.0.0.1:{server.port}", "Origin": "https://app.example.com",
                                         "Content-Type": "application/json", "X-Application-ID": server.application_id})
        assert status == 200
    finally:
        server.stop()


@sqlite_only
def test_no_copy_of_a_stored_key_is_left_in_the_data_dir(server):
    first, second, organization = "sk-proj-DISKSCAN-first-0123456789", "sk-proj-DISKSCAN-second-987654321", "org-DISKSCAN-4242"
    api = server.api()
    store = server.data_dir / "external-provider.sqlite"

    def sealed_values():
        """The sealed blobs as stored now: what secure_delete must wipe once they are replaced or deleted."""
        with sqlite3.connect(store) as connection:
            return [value for row in connection.execute("SELECT api_key, organization_key FROM provider_key") for value in row if value]

    create(api, "auth0|disk", api_key=first, organization_key=organization)
    replaced = sealed_values()
    update(api, "auth0|disk", {"api_key": second})
    deleted = sealed_values()
    # A new key re-seals the row's organization too, under a new nonce.
    assert len(replaced) == 2 and len(deleted) == 2 and not set(replaced) & set(deleted)
    secrets = [first, second, organization]

    def scan(blobs):
        found = []
        for path in server.data_dir.iterdir():
            data = path.read_bytes()
            for secret in secrets:
                for form in (secret.encode(), base64.b64encode(secret.encode()), base64.urlsafe_b64encode(secret.encode())):
                    if form in data:
                        found.append((path.name, secret))
            found += [(path.name, f"sealed value {index}") for index, blob in enumerate(blobs) if blob in data]
        return found

    def checkpoint():
        with sqlite3.connect(store) as connection:
            assert connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0

    checkpoint()
    assert scan(replaced) == []
    delete(api, "auth0|disk", True)
    checkpoint()
    assert scan(replaced + deleted) == []
    server.stop()
    assert scan(replaced + deleted) == []
    assert sorted(os.listdir(server.data_dir)) == ["application-id", "external-provider.sqlite", "lock", "master.key"]


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_no_copy_of_a_stored_key_is_in_the_database(server):
    """PostgreSQL holds sealed values only: every row of every table, as text, holds no key in any form."""
    first, second, organization = "sk-proj-PGSCAN-first-0123456789", "sk-proj-PGSCAN-second-987654321", "org-PGSCAN-4242"
    api = server.api()
    create(api, "auth0|pg", api_key=first, organization_key=organization)
    update(api, "auth0|pg", {"api_key": second})
    tables = ["user_account", "provider_key", "application", "store_meta", "external_provider_migration"]
    dump = "".join(
        subprocess.run(["psql", server.database_url, "-At", "-c", f"SELECT t::text FROM {table} t"],
                       capture_output=True, text=True, check=True).stdout for table in tables)
    assert "auth0|pg" in dump and "\\x01" in dump  # the rows are there, their keys sealed (format 1)
    for secret in (first, second, organization):
        for form in (secret, secret.encode().hex(), base64.b64encode(secret.encode()).decode()):
            assert form not in dump
