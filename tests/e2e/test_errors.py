"""Each rejection surfaces as the SDK's exception class, with our text/plain sentence."""

import json
import sqlite3

import pytest
from pieces_os_client.exceptions import (
    ApiException,
    BadRequestException,
    ConflictException,
    NotFoundException,
    ServiceException,
)

from conftest import sqlite_only
from sdk_models import TIMEOUT, PrecreatedExternalProviderApiKey, create, delete, update  # noqa: F401

PLAIN = "text/plain; charset=utf-8"


def header(error, name):
    return dict(error.headers or {}).get(name)


def test_bad_request(api):
    with pytest.raises(BadRequestException) as caught:
        create(api, "", api_key="sk-x")
    assert caught.value.status == 400
    assert caught.value.body == "Field 'user' must not be empty."
    assert header(caught.value, "Content-Type") == PLAIN

    with pytest.raises(BadRequestException) as caught:
        create(api, "someone")
    assert caught.value.body == "Field 'open_AI.api_key' is required and must not be empty."

    with pytest.raises(BadRequestException) as caught:
        api.external_provider_api_key_update(_request_timeout=TIMEOUT)
    assert caught.value.body == "A JSON request body is required."


def test_not_found_and_conflict(api):
    with pytest.raises(NotFoundException) as caught:
        update(api, "nobody", {"api_key_name": "x"})
    assert caught.value.body == "User 'nobody' is unknown: create a key for it first."
    with pytest.raises(NotFoundException):
        delete(api, "nobody", True)

    create(api, "taken", api_key="sk-first")
    with pytest.raises(ConflictException) as caught:
        create(api, "taken", api_key="sk-second")
    assert caught.value.status == 409
    assert "/external_provider/api_key/update" in caught.value.body
    assert header(caught.value, "Content-Type") == PLAIN


def test_too_large_and_wrong_content_type(api):
    with pytest.raises(ApiException) as caught:
        create(api, "big", api_key="sk-x", api_key_name="n" * 70_000)
    assert caught.value.status == 413
    assert caught.value.body == "The request body must be at most 65536 bytes."

    # The generated method refuses to send a model as text/plain, so send the same serialized request
    # through the SDK's own client and error mapping, as a form-posting page would.
    body = PrecreatedExternalProviderApiKey.from_dict({"user": "form", "open_AI": {"api_key": "sk-x"}})
    method, url, headers, payload, _ = api._external_provider_api_key_create_serialize(body, None, "text/plain", None, 0)
    response = api.api_client.call_api(method, url, headers, json.dumps(payload), _request_timeout=TIMEOUT)
    response.read()
    with pytest.raises(ApiException) as caught:
        api.api_client.response_deserialize(response, {"200": "CreatedExternalProviderApiKey", "401": "str", "500": "str"})
    assert caught.value.status == 415
    assert caught.value.body == "Content-Type must be application/json."
    with pytest.raises(NotFoundException):
        update(api, "big")
    with pytest.raises(NotFoundException):
        update(api, "form")


@sqlite_only
def test_store_fault_is_a_500_with_the_detail_only_in_the_log(server):
    api = server.api()
    create(api, "locked", api_key="sk-proj-fault-0123456789abcWxyz")
    # Another process holds the write lock past the server's busy timeout: a real fault, not a mock.
    holder = sqlite3.connect(server.data_dir / "external-provider.sqlite", isolation_level=None, timeout=1)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ServiceException) as caught:
            update(api, "locked", {"api_key_name": "blocked"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert caught.value.status == 500
    assert caught.value.body == "Internal Server Error"
    assert header(caught.value, "Content-Type") == PLAIN
    assert "database is locked" in server.log_text()
    assert "sk-proj-fault" not in server.log_text()
    assert update(api, "locked", {"api_key_name": "after"}).metadata.open_ai.api_key_name == "after"
