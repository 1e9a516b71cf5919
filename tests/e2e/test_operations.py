"""The three operations through the official SDK, decoded by the SDK's own models."""

import uuid

from pieces_os_client.models.created_external_provider_api_key import CreatedExternalProviderApiKey
from pieces_os_client.models.deleted_external_provider_api_key import DeletedExternalProviderApiKey
from pieces_os_client.models.embedded_model_schema_semantic_version_enum import EmbeddedModelSchemaSemanticVersionEnum
from pieces_os_client.models.updated_external_provider_api_key import UpdatedExternalProviderApiKey

from sdk_models import create, delete, update

KEY = "sk-proj-e2e-0123456789abcdefWxyz"


def assert_schema(schema):
    assert schema.migration == 6
    assert schema.semantic == EmbeddedModelSchemaSemanticVersionEnum.MAJOR_0_MINOR_0_PATCH_1


def test_create_update_delete_round_trip(api):
    created = create(api, "auth0|e2e", api_key=KEY, api_key_name="work", organization_key="org-1")
    assert isinstance(created, CreatedExternalProviderApiKey)
    assert_schema(created.var_schema)
    assert_schema(created.metadata.var_schema)
    global_id = created.metadata.global_id
    assert uuid.UUID(global_id)
    assert created.metadata.open_ai.api_key == "sk-...Wxyz"
    assert created.metadata.open_ai.api_key_name == "work"
    assert created.metadata.open_ai.organization_key == "org-1"

    updated = update(api, "auth0|e2e", {"api_key_name": "", "organization_key": "org-2"})
    assert isinstance(updated, UpdatedExternalProviderApiKey)
    assert updated.metadata.global_id == global_id
    assert updated.metadata.open_ai.api_key == "sk-...Wxyz"
    assert updated.metadata.open_ai.api_key_name is None
    assert updated.metadata.open_ai.organization_key == "org-2"

    rekeyed = update(api, "auth0|e2e", {"api_key": "sk-proj-e2e-second-key-000000Abcd"})
    assert rekeyed.metadata.open_ai.api_key == "sk-...Abcd"
    assert rekeyed.metadata.open_ai.organization_key == "org-2"

    unchanged = update(api, "auth0|e2e")
    assert unchanged.metadata == rekeyed.metadata

    kept = delete(api, "auth0|e2e", False)
    assert kept.metadata.open_ai is not None

    deleted = delete(api, "auth0|e2e", True)
    assert isinstance(deleted, DeletedExternalProviderApiKey)
    assert deleted.metadata.open_ai is None
    assert deleted.metadata.global_id == global_id
    assert_schema(deleted.metadata.var_schema)

    again = delete(api, "auth0|e2e", True)
    assert again.metadata.global_id == global_id

    recreated = create(api, "auth0|e2e", api_key="sk-short")
    assert recreated.metadata.global_id == global_id
    assert recreated.metadata.open_ai.api_key == "****"


def test_no_response_carries_the_whole_key(api):
    response = api.external_provider_api_key_create_with_http_info(
        __import__("sdk_models").PrecreatedExternalProviderApiKey.from_dict({"user": "u", "open_AI": {"api_key": KEY}}),
        _request_timeout=30,
    )
    assert KEY.encode() not in response.raw_data
    assert response.headers["Cache-Control"] == "no-store"


def test_data_survives_restart(server):
    api = server.api()
    created = create(api, "auth0|durable", api_key=KEY, api_key_name="kept")
    server.restart()
    api = server.api()
    after = update(api, "auth0|durable")
    assert after.metadata == created.metadata
    assert "Server started and listening" in server.log_text()
