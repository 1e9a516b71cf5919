"""Builds the SDK's request models from plain dicts, using the wire names."""

from pieces_os_client.models.precreated_external_provider_api_key import PrecreatedExternalProviderApiKey
from pieces_os_client.models.predeleted_external_provider_api_key import PredeletedExternalProviderApiKey
from pieces_os_client.models.preupdated_external_provider_api_key import PreupdatedExternalProviderApiKey

TIMEOUT = 30

# Every key, organization or application id any test sent, for the session's search of the logs.
SENT_SECRETS = set()


def remember(open_ai):
    for field in ("api_key", "organization_key"):
        value = (open_ai or {}).get(field)
        if isinstance(value, str) and len(value) >= 6:
            SENT_SECRETS.add(value)


def create(api, user, **open_ai):
    remember(open_ai)
    body = PrecreatedExternalProviderApiKey.from_dict({"user": user, "open_AI": open_ai})
    return api.external_provider_api_key_create(body, _request_timeout=TIMEOUT)


def update(api, user, open_ai=None):
    payload = {"user": user}
    if open_ai is not None:
        payload["open_AI"] = open_ai
        remember(open_ai)
    return api.external_provider_api_key_update(PreupdatedExternalProviderApiKey.from_dict(payload), _request_timeout=TIMEOUT)


def delete(api, user, open_ai=None):
    payload = {"user": user}
    if open_ai is not None:
        payload["open_AI"] = open_ai
    return api.external_provider_api_key_delete(PredeletedExternalProviderApiKey.from_dict(payload), _request_timeout=TIMEOUT)


def apps_create(server, name, *args):
    """Registers an application with the command line and returns its id, recorded for the log search."""
    result = server.cli("apps", "create", name, *args, check=False)
    assert result.returncode == 0, result.stderr
    application_id = result.stdout.strip()
    SENT_SECRETS.add(application_id)
    return application_id
