"""The OpenAI relay, driven by the official `openai` package against the stand-in OpenAI: the stored key
goes out, no caller credential does, streams arrive event by event, and the scope and binding rules hold."""

import subprocess
import time

import openai as openai_sdk
import pytest
from openai import OpenAI

from conftest import BINARY, Server, free_port
from pieces_os_client.exceptions import ApiException

from sdk_models import SENT_SECRETS, apps_create, create

KEY = "sk-proj-RELAY-0123456789abcdefWxyz"
ORGANIZATION = "org-relay-0001"


def relay_client(server, application_id=None, user="auth0|relay", **options):
    headers = {"X-User-ID": user} if user else {}
    SENT_SECRETS.add(application_id or server.application_id)
    return OpenAI(base_url=f"{server.base_url}/open_ai/v1", api_key=application_id or server.application_id,
                  default_headers=headers, max_retries=0, timeout=30, **options)


def lowered(headers):
    return {name.lower(): value for name, value in headers.items()}


@pytest.fixture
def relay_user(server):
    create(server.api(), "auth0|relay", api_key=KEY, organization_key=ORGANIZATION)
    return "auth0|relay"


def test_a_chat_completion_goes_out_with_the_stored_key_and_no_caller_credential(server, openai, relay_user):
    mark = len(openai.relayed)
    answer = relay_client(server).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hi"}],
        extra_headers={"OpenAI-Beta": "assistants=v2", "Cookie": "session=caller", "OpenAI-Organization": "org-caller",
                       "OpenAI-Project": "proj-caller"},
        extra_query={"trace": "1"})
    assert answer.choices[0].message.content == "Hello from the stand-in."
    [seen] = openai.relayed[mark:]
    headers = lowered(seen["headers"])
    assert (seen["method"], seen["path"], seen["query"]) == ("POST", "/v1/chat/completions", "trace=1")
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["openai-organization"] == ORGANIZATION
    assert headers["openai-beta"] == "assistants=v2"
    assert headers["content-type"] == "application/json"
    for dropped in ("x-application-id", "x-user-id", "cookie", "openai-project"):
        assert dropped not in headers
    assert server.application_id not in repr(seen)


def test_a_streamed_completion_arrives_event_by_event(server, openai, relay_user):
    stream = relay_client(server).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True, metadata={"events": "5"})
    first_received, words = None, []
    for chunk in stream:
        if first_received is None:
            first_received = time.monotonic()
        words.append(chunk.choices[0].delta.content)
    sent = openai.streams[-1]["sent"]
    assert words == [f"word{index} " for index in range(5)]
    # The stand-in sends the events 100 ms apart: the first arrived before the last was sent.
    assert len(sent) == 5 and first_received < sent[-1]


def test_a_client_that_goes_away_cancels_the_upstream_stream(server, openai, relay_user):
    stream = relay_client(server).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True, metadata={"events": "50"})
    events = iter(stream)
    next(events)
    next(events)
    stream.close()
    upstream = openai.streams[-1]
    deadline = time.monotonic() + 4
    while upstream["client_gone_after"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    # Without cancelling, the stand-in would send all 50 events over 5 s.
    assert upstream["client_gone_after"] is not None and upstream["client_gone_after"] < 20, upstream


def test_a_multipart_upload_streams_through(server, openai, relay_user):
    data = b'{"prompt": "p", "completion": "c"}\n' * 10_000
    uploaded = relay_client(server).files.create(file=("train.jsonl", data), purpose="assistants")
    assert uploaded.filename == "train.jsonl"
    seen = openai.relayed[-1]
    assert lowered(seen["headers"])["content-type"].startswith("multipart/form-data; boundary=")
    assert data in seen["body"] and uploaded.bytes == len(seen["body"])


def test_a_body_over_the_relay_limit_gets_413(workdir, openai):
    server = Server(workdir / "small", ["--relay-max-body", "300000"]).start()
    refusal = b"A relayed request body must be at most 300000 bytes (--relay-max-body)."
    try:
        create(server.api(), "auth0|relay", api_key=KEY)
        mark = len(openai.relayed)
        with pytest.raises(openai_sdk.APIStatusError) as caught:
            relay_client(server).files.create(file=("big.jsonl", b"x" * 400_000), purpose="assistants")
        assert caught.value.status_code == 413
        assert caught.value.response.text == refusal.decode()
        assert openai.relayed[mark:] == []
        # A chunked body declares no length: it is counted as it arrives. Past the 256 KiB read before the
        # request goes out, it streams on, and is cut at the limit.
        import http.client
        cut_before = openai.cut_short
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("POST", "/open_ai/v1/files", body=iter([b"x" * 50_000] * 12), encode_chunked=True,
                           headers={"Content-Type": "application/octet-stream", "X-Application-ID": server.application_id,
                                    "X-User-ID": "auth0|relay"})
        response = connection.getresponse()
        assert (response.status, response.read()) == (413, refusal)
        assert openai.relayed[mark:] == []
        deadline = time.monotonic() + 5
        while openai.cut_short == cut_before and time.monotonic() < deadline:
            time.sleep(0.05)
        # The upstream got a body cut short, never a whole one.
        assert openai.cut_short == cut_before + 1
    finally:
        server.stop()


def test_openais_own_errors_pass_through_and_a_rejected_key_is_logged(server, openai, relay_user):
    create(server.api(), "auth0|revoked", api_key="sk-proj-revoked-0123456789abWxyz")
    with pytest.raises(openai_sdk.AuthenticationError) as caught:
        relay_client(server, user="auth0|revoked").chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    time.sleep(0.2)
    assert "OpenAI rejected the stored key" in server.log_text() and "openai.error_code=invalid_api_key" in server.log_text()
    with pytest.raises(openai_sdk.NotFoundError) as caught:
        relay_client(server).files.delete("file-no-such")
    assert caught.value.code == "unknown_url"


def test_who_may_use_which_key(server, openai, relay_user):
    create(server.api(), "auth0|other", api_key="sk-proj-OTHER-0123456789abcdWxyz")
    question = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}

    keys_only = apps_create(server, "keys-only")
    with pytest.raises(openai_sdk.PermissionDeniedError) as caught:
        relay_client(server, keys_only).chat.completions.create(**question)
    assert "lacks the 'relay' scope" in caught.value.response.text

    bound = apps_create(server, "bound", "--user", "auth0|relay")
    mark = len(openai.relayed)
    relay_client(server, bound, user=None).chat.completions.create(**question)
    relay_client(server, bound, user="auth0|relay").chat.completions.create(**question)
    assert [lowered(seen["headers"])["authorization"] for seen in openai.relayed[mark:]] == [f"Bearer {KEY}"] * 2
    with pytest.raises(openai_sdk.PermissionDeniedError) as caught:
        relay_client(server, bound, user="auth0|other").chat.completions.create(**question)
    assert "bound to one user" in caught.value.response.text
    # A bound application has the relay scope only, unless told otherwise.
    with pytest.raises(ApiException) as refused:
        create(server.api(application_id=bound), "auth0|third", api_key="sk-proj-THIRD-0123456789abcWxyz")
    assert refused.value.status == 403 and "lacks the 'keys' scope" in refused.value.body
    # With the keys scope too, it is bound on the key operations as well: its own user's keys only.
    both = apps_create(server, "bound-both", "--user", "auth0|relay", "--scope", "keys", "--scope", "relay")
    with pytest.raises(ApiException) as refused:
        create(server.api(application_id=both), "auth0|third", api_key="sk-proj-THIRD-0123456789abcWxyz")
    assert refused.value.status == 403 and "bound to one user" in refused.value.body
    from sdk_models import update
    assert update(server.api(application_id=both), "auth0|relay", {"api_key_name": "own"}).metadata.open_ai.api_key_name == "own"

    with pytest.raises(openai_sdk.BadRequestError) as caught:
        relay_client(server, user=None).chat.completions.create(**question)
    assert "X-User-ID" in caught.value.response.text
    with pytest.raises(openai_sdk.NotFoundError) as caught:
        relay_client(server, user="auth0|nobody").chat.completions.create(**question)
    assert "has no OpenAI key" in caught.value.response.text
    with pytest.raises(openai_sdk.AuthenticationError):
        relay_client(server, "not-an-application").chat.completions.create(**question)
    listing = server.cli("apps", "list")
    assert "keys,relay" in listing.stdout and "auth0|relay" in listing.stdout


def test_unreachable_and_slow_upstreams_get_502_and_504(workdir, openai):
    closed = Server(workdir / "unreachable", ["--no-verify-keys", "--openai-base-url", f"http://127.0.0.1:{free_port()}"]).start()
    try:
        create(closed.api(), "auth0|relay", api_key=KEY)
        with pytest.raises(openai_sdk.InternalServerError) as caught:
            relay_client(closed).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        assert caught.value.status_code == 502 and KEY not in caught.value.response.text
    finally:
        closed.stop()
    slow = Server(workdir / "slow", ["--relay-timeout", "1"]).start()
    try:
        create(slow.api(), "auth0|relay", api_key=KEY)
        with pytest.raises(openai_sdk.InternalServerError) as caught:
            relay_client(slow).chat.completions.create(model="slow-model", messages=[{"role": "user", "content": "Hi"}])
        assert caught.value.status_code == 504
    finally:
        slow.stop()


def models_api(server, application_id=None):
    from pieces_os_client.api.open_ai_api import OpenAIApi
    from pieces_os_client.api_client import ApiClient
    from pieces_os_client.configuration import Configuration

    configuration = Configuration(host=server.base_url)
    configuration.api_key["application"] = application_id or server.application_id
    return OpenAIApi(ApiClient(configuration))


def list_models(api, user):
    from pieces_os_client.models.open_ai_models_list_input import OpenAIModelsListInput

    return api.open_ai_models_list(OpenAIModelsListInput.from_dict({"user": user}), _request_timeout=30)


def test_the_sdk_lists_the_users_models(server, openai, relay_user):
    from openai_standin import MODELS

    mark = openai.mark()
    listed = list_models(models_api(server), relay_user)
    assert openai.seen_since(mark) == [(f"Bearer {KEY}", ORGANIZATION)]
    models = {model.name: model for model in listed.models.iterable}
    assert sorted(models) == sorted(MODELS)
    gpt = models["gpt-4o"]
    assert (gpt.unique, gpt.cloud, gpt.provider.value, gpt.foundation.value) == ("gpt-4o", True, "OPENAI", "GPT_4")
    assert (gpt.usage.value, gpt.type.value, gpt.version) == ("CODE_CONVERSATION", "BALANCED", "latest")
    assert gpt.created.value.timestamp() == 1715367049
    mini = models["gpt-4o-mini-2024-07-18"]
    assert (mini.type.value, mini.version) == ("SPEED", "2024-07-18")
    assert models["text-embedding-3-small"].usage.value == "TEXT_EMBEDDING"
    assert models["whisper-1"].foundation is None and models["whisper-1"].usage.value == "UNKNOWN"


def test_the_model_list_says_why_it_cannot_list(server, workdir, relay_user):
    from pieces_os_client.exceptions import ApiException, UnauthorizedException

    with pytest.raises(UnauthorizedException) as caught:
        list_models(models_api(server), "auth0|no-key")
    assert "has no OpenAI key" in caught.value.body
    keys_only = apps_create(server, "keys-only-models")
    with pytest.raises(ApiException) as refused:
        list_models(models_api(server, keys_only), relay_user)
    assert refused.value.status == 403 and "lacks the 'relay' scope" in refused.value.body
    bound = apps_create(server, "bound-models", "--user", "auth0|other-user")
    with pytest.raises(ApiException) as refused:
        list_models(models_api(server, bound), relay_user)
    assert refused.value.status == 403 and "bound to one user" in refused.value.body

    # A key stored unchecked, which OpenAI refuses when asked for the models.
    unchecked = Server(workdir / "unchecked", ["--no-verify-keys"]).start()
    try:
        create(unchecked.api(), "auth0|expired", api_key="sk-proj-invalid-0123456789abWxyz")
        with pytest.raises(UnauthorizedException) as caught:
            list_models(models_api(unchecked), "auth0|expired")
        assert caught.value.body == (
            "OpenAI rejected the stored key of user 'auth0|expired' (invalid_api_key): "
            "replace it with /external_provider/api_key/update.")
        assert [key["user"] for key in keys_list(unchecked, "--json", "--health", "rejected")] == ["auth0|expired"]
    finally:
        unchecked.stop()


def keys_list(server, *args):
    import json

    result = server.cli("keys", "list", *args, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if "--json" in args else result.stdout


def test_a_key_openai_refuses_through_the_relay_turns_rejected_until_replaced(server):
    from sdk_models import update

    create(server.api(), "auth0|health", api_key="sk-proj-revoked-health-0123Wxyz", organization_key="org-health")
    [stored] = keys_list(server, "--json")
    assert (stored["user"], stored["health"], stored["api_key"]) == ("auth0|health", "valid", "sk-...Wxyz")
    with pytest.raises(openai_sdk.AuthenticationError):
        relay_client(server, user="auth0|health").chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    [rejected] = keys_list(server, "--json", "--health", "rejected")
    assert (rejected["user"], rejected["error_code"]) == ("auth0|health", "invalid_api_key")
    table = keys_list(server)
    assert "rejected (invalid_api_key)" in table and "sk-proj-revoked" not in table
    # A replacement that passes the check is valid again, and the relay works with it.
    update(server.api(), "auth0|health", {"api_key": "sk-proj-fresh-health-0123456Wxyz"})
    assert keys_list(server, "--json", "--health", "rejected") == []
    relay_client(server, user="auth0|health").chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    [valid] = keys_list(server, "--json")
    assert valid["health"] == "valid" and valid["organization_key"] == "org-health"


def test_an_upstream_that_answers_before_reading_the_body(server, relay_user):
    """The relay once answered while its upload still read the request body, and the server's own read of
    the rest then ran beside it: the process crashed on the second reader."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    for _ in range(20):
        connection.request("POST", "/open_ai/v1/early-answer", body=b"x" * 2_000_000,
                           headers={"Content-Type": "application/octet-stream", "X-Application-ID": server.application_id,
                                    "X-User-ID": relay_user})
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b'{"object": "early"}')
    assert server.process.poll() is None


def test_a_redirect_from_openai_is_a_502_and_is_not_followed(server, openai, relay_user):
    with pytest.raises(openai_sdk.APIStatusError) as refused:
        relay_client(server).get("/redirected", cast_to=object)
    assert refused.value.status_code == 502
    assert "redirect (302)" in refused.value.response.text and "not followed" in refused.value.response.text
    assert openai.redirect_target_hits == [], "the relay followed a redirect, carrying the key elsewhere"
