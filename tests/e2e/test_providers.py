"""Keys for Anthropic, Gemini, Mistral and Groq beside OpenAI's (issue 21): the keys API stores, checks,
lists and removes them; the relay puts them to work under `/relay/{provider}` with each provider's own
headers, driven by the official `anthropic`, `google-genai` and `openai` packages against stand-ins that
refuse what the real providers refuse; and every key goes only to its own provider."""

import http.client
import json
import time
from urllib.parse import quote

import anthropic
import openai as openai_sdk
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from openai import OpenAI

from conftest import OPENAI, PROVIDERS, Server
from sdk_models import SENT_SECRETS, apps_create, create, update

KEYS = {
    "openai": "sk-proj-PROVIDERS-0123456789abWxyz",
    "anthropic": "sk-ant-api03-PROVIDERS-0123456Wxyz",
    "gemini": "AIzaSyPROVIDERS-0123456789abcdWxyz",
    "mistral": "mstrlPROVIDERS0123456789abcdeWxyz",
    "groq": "gsk_PROVIDERS0123456789abcdefWxyz",
}
MASKS = {"openai": "sk-...Wxyz", "anthropic": "sk-ant-...Wxyz", "gemini": "AIza...Wxyz", "mistral": "...Wxyz", "groq": "gsk_...Wxyz"}
USER = "auth0|providers"


def keys_api(server, method, path, body=None, application_id=None, headers=None):
    """One call of the keys API: (status, parsed JSON or text)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent = {"X-Application-ID": application_id or server.application_id, **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
        for field in ("api_key", "organization"):
            if isinstance(body, dict) and isinstance(body.get(field), str) and len(body[field]) >= 6:
                SENT_SECRETS.add(body[field])
    connection.request(method, path, body=data, headers=sent)
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, json.loads(text)
    return response.status, text


def key_path(user, provider=None, suffix=""):
    path = f"/v1/users/{quote(user, safe='')}/keys"
    return path + (f"/{provider}" if provider else "") + suffix


def put_all(server, user=USER):
    for provider, key in KEYS.items():
        status, stored = keys_api(server, "PUT", key_path(user, provider), {"api_key": key})
        assert status == 201, (provider, status, stored)


# The keys API.

def test_every_providers_key_is_stored_checked_listed_and_removed(server):
    mark, openai_mark = PROVIDERS.mark(), OPENAI.mark()
    put_all(server)
    # Each key was checked once, with its own provider, by the call its documentation names.
    checks = [(request["provider"], request["path"], request["query"]) for request in PROVIDERS.since(mark)]
    assert sorted(checks) == sorted([("anthropic", "/anthropic/v1/models", "limit=1000"), ("gemini", "/gemini/v1beta/models", "pageSize=1000"),
                                     ("mistral", "/mistral/v1/models", ""), ("groq", "/groq/openai/v1/models", "")])
    assert [authorization for authorization, _ in OPENAI.seen_since(openai_mark)] == [f"Bearer {KEYS['openai']}"]
    status, listed = keys_api(server, "GET", key_path(USER))
    assert status == 200 and listed["user"] == USER
    assert {key["provider"]: key["api_key"] for key in listed["keys"]} == MASKS
    assert all(key["health"] == "valid" and key["checked_at"] and key["updated_at"] for key in listed["keys"])
    # Each provider's models, through its own key.
    status, models = keys_api(server, "GET", key_path(USER, "anthropic", "/models"))
    assert status == 200 and models["provider"] == "anthropic"
    assert models["models"][0] == {"id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5", "created": "2025-09-29T00:00:00Z"}
    assert [model["id"] for model in keys_api(server, "GET", key_path(USER, "gemini", "/models"))[1]["models"]] == ["gemini-2.5-flash", "gemini-2.5-pro"]
    assert "llama-3.3-70b-versatile" in [model["id"] for model in keys_api(server, "GET", key_path(USER, "groq", "/models"))[1]["models"]]
    # Removed one at a time; again is done too.
    assert keys_api(server, "DELETE", key_path(USER, "gemini")) == (204, "")
    assert keys_api(server, "DELETE", key_path(USER, "gemini")) == (204, "")
    assert keys_api(server, "DELETE", key_path("auth0|never-seen", "gemini")) == (204, "")
    assert sorted(key["provider"] for key in keys_api(server, "GET", key_path(USER))[1]["keys"]) == ["anthropic", "groq", "mistral", "openai"]
    status, text = keys_api(server, "GET", key_path(USER, "gemini", "/models"))
    assert status == 404 and text == f"User '{USER}' has no Gemini key: store one with PUT /v1/users/{{user}}/keys/gemini first."


def test_a_put_sent_again_changes_nothing_and_checks_nothing(server):
    body = {"api_key": KEYS["anthropic"], "name": "work"}
    assert keys_api(server, "PUT", key_path(USER, "anthropic"), body)[0] == 201
    mark = PROVIDERS.mark()
    audited = len(json.loads(server.cli("audit", "--json").stdout))
    status, again = keys_api(server, "PUT", key_path(USER, "anthropic"), body)
    assert status == 200 and again["name"] == "work" and again["api_key"] == "sk-ant-...Wxyz"
    assert PROVIDERS.since(mark) == [], "a retried PUT asked the provider again"
    assert len(json.loads(server.cli("audit", "--json").stdout)) == audited, "a retried PUT wrote an audit entry"
    # A new name alone is stored without a check; a new key is checked.
    assert keys_api(server, "PUT", key_path(USER, "anthropic"), {"api_key": KEYS["anthropic"], "name": "home"})[1]["name"] == "home"
    assert PROVIDERS.since(mark) == []
    status, replaced = keys_api(server, "PUT", key_path(USER, "anthropic"), {"api_key": "sk-ant-api03-REPLACED-0123456Abcd"})
    assert status == 200 and replaced["api_key"] == "sk-ant-...Abcd" and "name" not in replaced
    assert [request["headers"]["x-api-key"] for request in PROVIDERS.since(mark)] == ["sk-ant-api03-REPLACED-0123456Abcd"]
    entries = json.loads(server.cli("audit", "--json").stdout)
    assert [(entry["action"], entry["providers"]) for entry in entries[-3:]] == [("create", ["anthropic"]), ("update", ["anthropic"]),
                                                                             ("update", ["anthropic"])]


def test_patch_renames_and_clears_and_checks_only_a_new_openai_organization(server):
    put_all(server)
    mark, openai_mark = PROVIDERS.mark(), OPENAI.mark()
    status, renamed = keys_api(server, "PATCH", key_path(USER, "groq"), {"name": "ci"})
    assert status == 200 and renamed["name"] == "ci" and renamed["api_key"] == "gsk_...Wxyz"
    assert keys_api(server, "PATCH", key_path(USER, "groq"), {"name": None})[1].get("name") is None
    assert PROVIDERS.since(mark) == []
    status, organized = keys_api(server, "PATCH", key_path(USER, "openai"), {"organization": "org-patched"})
    assert status == 200 and organized["organization"] == "org-patched"
    assert OPENAI.seen_since(openai_mark) == [(f"Bearer {KEYS['openai']}", "org-patched")]
    # Refusals, each a sentence, and nothing changes.
    assert keys_api(server, "PATCH", key_path(USER, "anthropic"), {"organization": "org-1"}) == (
        400, "Field 'organization' is OpenAI's only: Anthropic keys have no organization.")
    assert keys_api(server, "PATCH", key_path(USER, "groq"), {"api_key": "gsk_other0123456789012345"})[0] == 400
    assert keys_api(server, "PATCH", key_path(USER, "groq"), {"name": 7}) == (400, "Field 'name' must be a string, or null to clear it.")
    assert keys_api(server, "PATCH", key_path("auth0|nobody", "groq"), {"name": "x"}) == (
        404, "User 'auth0|nobody' has no Groq key: store one with PUT /v1/users/{user}/keys/groq first.")


def test_bad_input_and_refused_keys_are_sentences_that_change_nothing(server):
    mark = PROVIDERS.mark()
    assert keys_api(server, "PUT", key_path(USER, "cohere"), {"api_key": "x" * 30}) == (
        400, "Unknown provider 'cohere': use one of openai, anthropic, gemini, mistral, groq.")
    assert keys_api(server, "PUT", key_path(USER, "gemini"), {"api_key": KEYS["gemini"], "organization": "org-1"}) == (
        400, "Field 'organization' is OpenAI's only: Gemini keys have no organization.")
    assert keys_api(server, "PUT", key_path(USER, "gemini"), {"name": "no key"}) == (400, "Field 'api_key' is required.")
    assert PROVIDERS.since(mark) == []
    for provider, key, code in [("anthropic", "sk-ant-api03-invalid-0123456789Wxyz", "authentication_error"),
                                ("anthropic", "sk-ant-api03-forbidden-012345678Wxyz", "permission_error"),
                                ("gemini", "AIzaSy-invalid-0123456789abcdefWxyz", "API_KEY_INVALID"),
                                ("mistral", "mstrl-invalid-0123456789abcdefWxyz", "unauthorized"),
                                ("groq", "gsk_invalid0123456789abcdefWxyz", "invalid_api_key")]:
        status, text = keys_api(server, "PUT", key_path(USER, provider), {"api_key": key})
        assert (status, text) == (401, f"Invalid Authentication, Incorrect API key provided or organization: {code}"), provider
        assert key not in text
    status, text = keys_api(server, "PUT", key_path(USER, "groq"), {"api_key": "gsk_ratelimit0123456789abcWxyz"})
    assert status == 502 and "Groq is limiting requests (429)" in text
    assert keys_api(server, "GET", key_path(USER)) == (200, {"user": USER, "keys": []})


def test_a_user_id_with_a_slash_is_one_percent_encoded_segment(server):
    user = "google-oauth2|ada/lovelace"
    status, stored = keys_api(server, "PUT", key_path(user, "mistral"), {"api_key": KEYS["mistral"]})
    assert status == 201 and stored["api_key"] == "...Wxyz"
    assert keys_api(server, "GET", key_path(user))[1]["user"] == user
    assert keys_api(server, "GET", "/v1/users/google-oauth2|ada/lovelace/keys")[0] == 404


def test_the_contract_and_the_keys_api_show_one_openai_record(server):
    create(server.api(), USER, api_key=KEYS["openai"], api_key_name="laptop", organization_key="org-both")
    [listed] = keys_api(server, "GET", key_path(USER))[1]["keys"]
    assert (listed["provider"], listed["api_key"], listed["name"], listed["organization"]) == ("openai", "sk-...Wxyz", "laptop", "org-both")
    status, replaced = keys_api(server, "PUT", key_path(USER, "openai"), {"api_key": "sk-proj-FROM-KEYS-API-0123456Qrst", "name": "api"})
    assert status == 200 and replaced.get("organization") is None
    shown = update(server.api(), USER).metadata.open_ai
    assert (shown.api_key, shown.api_key_name, shown.organization_key) == ("sk-...Qrst", "api", None)


def test_a_bound_or_relay_only_application_is_refused(server):
    bound = apps_create(server, "bound-keys-api", "--user", "auth0|mine", "--scope", "keys")
    assert keys_api(server, "PUT", key_path("auth0|mine", "groq"), {"api_key": KEYS["groq"]}, application_id=bound)[0] == 201
    for method, path, body in [("PUT", key_path("auth0|theirs", "groq"), {"api_key": KEYS["groq"]}), ("GET", key_path("auth0|theirs"), None),
                               ("DELETE", key_path("auth0|mine-not", "groq"), None), ("GET", key_path("auth0|theirs", "groq", "/models"), None)]:
        status, text = keys_api(server, method, path, body, application_id=bound)
        assert status == 403 and "bound to one user" in text, (method, path)
    relay_only = apps_create(server, "relay-only-keys-api", "--scope", "relay")
    status, text = keys_api(server, "GET", key_path("auth0|mine"), application_id=relay_only)
    assert status == 403 and "lacks the 'keys' scope" in text


# The relay, through each provider's official SDK.

def relay_user(server, user=USER):
    put_all(server, user)
    return user


def test_anthropic_sdk_through_the_relay_streamed_and_not(server):
    relay_user(server)
    client = anthropic.Anthropic(base_url=f"{server.base_url}/relay/anthropic", api_key=server.application_id,
                                 default_headers={"X-User-ID": USER},
                                 max_retries=0, timeout=30)
    mark = PROVIDERS.mark()
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].text == "Hello from the Anthropic stand-in." and message.usage.input_tokens == 11
    [seen] = PROVIDERS.since(mark, "anthropic")
    headers = seen["headers"]
    assert seen["path"] == "/anthropic/v1/messages" and headers["x-api-key"] == KEYS["anthropic"]
    # The SDK's own version passes; its bearer token, the application id, does not.
    assert headers["anthropic-version"] == client.default_headers["anthropic-version"]
    for dropped in ("authorization", "x-application-id", "x-user-id", "origin", "cookie"):
        assert dropped not in headers
    assert server.application_id not in json.dumps(headers)
    words, started = [], time.monotonic()
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]) as stream:
        for text in stream.text_stream:
            words.append(text)
        final = stream.get_final_message()
    assert "".join(words) == "Hello from the stand-in." and final.usage.output_tokens == 7
    assert [model.id for model in client.models.list()] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert client.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "Hi"}]).input_tokens == 11


def test_anthropic_version_is_added_when_the_caller_sends_none_and_origin_is_dropped(server):
    relay_user(server)
    mark = PROVIDERS.mark()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]})
    # x-api-key, as the anthropic package's earlier releases send it; an Origin Anthropic would refuse.
    connection.request("POST", "/relay/anthropic/v1/messages", body=body,
                       headers={"x-api-key": server.application_id, "X-User-ID": USER, "Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    [seen] = PROVIDERS.since(mark, "anthropic")
    assert seen["headers"]["anthropic-version"] == "2023-06-01" and seen["headers"]["x-api-key"] == KEYS["anthropic"]


def test_google_genai_sdk_through_the_relay_streamed_and_not(server):
    relay_user(server)
    client = genai.Client(api_key=server.application_id,
                          http_options=genai_types.HttpOptions(base_url=f"{server.base_url}/relay/gemini", headers={"X-User-ID": USER}))
    mark = PROVIDERS.mark()
    answer = client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert answer.text == "Hello from the Gemini stand-in." and answer.usage_metadata.prompt_token_count == 13
    [seen] = PROVIDERS.since(mark, "gemini")
    assert seen["path"].endswith("/models/gemini-2.5-flash:generateContent") and seen["headers"]["x-goog-api-key"] == KEYS["gemini"]
    assert "key=" not in seen["query"] and server.application_id not in json.dumps(seen["headers"])
    chunks = [chunk.text for chunk in client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi")]
    assert "".join(chunks) == "Hello from the stand-in."
    streamed = PROVIDERS.since(mark, "gemini")[-1]
    assert streamed["path"].endswith(":streamGenerateContent") and streamed["query"] == "alt=sse"


def test_a_gemini_key_in_the_query_is_refused_before_anything_is_sent(server):
    relay_user(server)
    mark = PROVIDERS.mark()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", f"/relay/gemini/v1beta/models?key={server.application_id}",
                       headers={"x-goog-api-key": server.application_id, "X-User-ID": USER})
    response = connection.getresponse()
    assert response.status == 400 and b"'key' query parameter" in response.read()
    assert PROVIDERS.since(mark) == []


@pytest.mark.parametrize("provider", ["mistral", "groq", "openai"])
def test_the_openai_sdk_through_the_relay_of_each_provider_speaking_its_protocol(server, provider):
    relay_user(server)
    client = OpenAI(base_url=f"{server.base_url}/relay/{provider}", api_key=server.application_id, default_headers={"X-User-ID": USER},
                    max_retries=0, timeout=30)
    answer = client.chat.completions.create(model="some-model", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content.startswith("Hello from the")
    words = [chunk.choices[0].delta.content for chunk in client.chat.completions.create(
        model="some-model", stream=True, messages=[{"role": "user", "content": "Hi"}]) if chunk.choices]
    assert "".join(words).replace("word", "").strip()
    if provider != "openai":
        assert [model.id for model in client.models.list()] == PROVIDERS_MODELS[provider]
        seen = PROVIDERS.since(0, provider)[-1]
        assert seen["headers"]["authorization"] == f"Bearer {KEYS[provider]}"


PROVIDERS_MODELS = {"mistral": ["mistral-large-latest", "mistral-small-latest"], "groq": ["llama-3.3-70b-versatile", "openai/gpt-oss-20b"]}


def test_each_key_goes_to_its_own_provider_only(server):
    relay_user(server)
    mark, openai_mark = PROVIDERS.mark(), len(OPENAI.relayed)
    question = {"messages": [{"role": "user", "content": "Hi"}]}
    headers = {"X-Application-ID": server.application_id, "X-User-ID": USER, "Content-Type": "application/json"}
    for provider, path, body in [("anthropic", "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 8, **question}),
                                 ("gemini", "/v1beta/models/gemini-2.5-pro:generateContent", {"contents": [{"parts": [{"text": "Hi"}]}]}),
                                 ("mistral", "/chat/completions", {"model": "mistral-small-latest", **question}),
                                 ("groq", "/chat/completions", {"model": "openai/gpt-oss-20b", **question}),
                                 ("openai", "/chat/completions", {"model": "gpt-4o", **question})]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("POST", f"/relay/{provider}{path}", body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        assert response.status == 200, (provider, response.read())
        response.read()
    seen = PROVIDERS.since(mark) + [dict(record, provider="openai") for record in OPENAI.relayed[openai_mark:]]
    assert sorted(record["provider"] for record in seen) == ["anthropic", "gemini", "groq", "mistral", "openai"]
    for record in seen:
        everything = json.dumps(record["headers"]) + record["body"].decode(errors="replace") + record.get("query", "")
        for provider, key in KEYS.items():
            assert (key in everything) == (provider == record["provider"]), (record["provider"], provider)


def test_a_key_the_provider_refuses_through_the_relay_turns_rejected(server):
    mark = PROVIDERS.mark()
    unchecked = Server(server.data_dir.parent / "unchecked", ["--no-verify-keys"]).start()
    try:
        status, _ = keys_api(unchecked, "PUT", key_path(USER, "gemini"), {"api_key": "AIzaSy-invalid-0123456789abcdefWxyz"})
        assert status == 201
        client = genai.Client(api_key=unchecked.application_id,
                              http_options=genai_types.HttpOptions(base_url=f"{unchecked.base_url}/relay/gemini", headers={"X-User-ID": USER}))
        with pytest.raises(genai_errors.ClientError) as refused:
            client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
        assert refused.value.code == 400
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            [stored] = keys_api(unchecked, "GET", key_path(USER))[1]["keys"]
            if stored["health"] == "rejected":
                break
            time.sleep(0.1)
        assert (stored["health"], stored["health_code"]) == ("rejected", "API_KEY_INVALID")
        assert "Gemini rejected the stored key" in unchecked.log_text()
        # No key at all is a 404 that names the provider.
        no_key = anthropic.Anthropic(base_url=f"{unchecked.base_url}/relay/anthropic", api_key=unchecked.application_id,
                                     default_headers={"X-User-ID": USER}, max_retries=0)
        with pytest.raises(anthropic.NotFoundError) as missing:
            no_key.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
        assert "has no Anthropic key" in missing.value.response.text
    finally:
        unchecked.stop()


def test_two_application_ids_that_disagree_are_refused(server):
    relay_user(server)
    other = apps_create(server, "another-relay-app", "--scope", "relay")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/relay/anthropic/v1/models",
                       headers={"x-api-key": server.application_id, "Authorization": f"Bearer {other}", "X-User-ID": USER})
    response = connection.getresponse()
    assert response.status == 400 and b"more than one header" in response.read()


def test_the_provider_flags_are_declared_from_the_provider_table(workdir):
    from conftest import BINARY
    import subprocess
    help_text = subprocess.run([str(BINARY), "serve", "--help"], capture_output=True, text=True).stdout
    for provider in ("openai", "anthropic", "gemini", "mistral", "groq"):
        assert f"--{provider}-base-url" in help_text and f"EXTERNAL_PROVIDER_{provider.upper()}_BASE_URL" in help_text
