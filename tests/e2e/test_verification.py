"""Each key is checked with (a stand-in for) OpenAI before it is stored; every outcome through the SDK."""

import pytest
from pieces_os_client.exceptions import NotFoundException, ServiceException, UnauthorizedException

from sdk_models import create, update

INVALID = "Invalid Authentication, Incorrect API key provided or organization: "
VALID = "sk-proj-valid-e2e-0123456789Wxyz"


def assert_nothing_stored(api, user="auth0|checked"):
    with pytest.raises(NotFoundException):
        update(api, user)


def test_an_accepted_key_is_stored_after_the_check(api, openai):
    mark = openai.mark()
    created = create(api, "auth0|checked", api_key=VALID, organization_key="org-good")
    assert created.metadata.open_ai.api_key == "sk-...Wxyz"
    assert openai.seen_since(mark) == [(f"Bearer {VALID}", "org-good")]


@pytest.mark.parametrize("key, organization, code", [
    ("sk-proj-invalid-e2e-012345Wxyz", None, "invalid_api_key"),
    (VALID, "org-wrong", "mismatched_organization"),
])
def test_a_refused_key_is_a_401_with_openais_code(api, key, organization, code):
    with pytest.raises(UnauthorizedException) as caught:
        create(api, "auth0|checked", api_key=key, **({"organization_key": organization} if organization else {}))
    assert caught.value.status == 401
    assert caught.value.body == INVALID + code
    assert "Wxyz" not in caught.value.body
    assert_nothing_stored(api)


@pytest.mark.parametrize("key, status, reason", [
    ("sk-proj-error500-e2e-0123Wxyz", 502, "OpenAI answered 500"),
    ("sk-proj-ratelimit-e2e-012Wxyz", 502, "OpenAI is limiting requests (429)"),
    ("sk-proj-redirect-e2e-0123Wxyz", 502, "redirect (302)"),
    ("sk-proj-slow-e2e-0123456Wxyz", 504, "no answer within the verify timeout"),
])
def test_no_usable_answer_is_a_502_or_504_and_stores_nothing(api, openai, key, status, reason):
    mark = openai.mark()
    with pytest.raises(ServiceException) as caught:
        create(api, "auth0|checked", api_key=key)
    assert caught.value.status == status
    assert caught.value.body.startswith("The key could not be checked with OpenAI, so nothing was stored: ")
    assert reason in caught.value.body
    assert len(openai.seen_since(mark)) == 1
    assert openai.redirect_target_hits == [], "a redirect was followed"
    assert_nothing_stored(api)


def test_an_unreachable_openai_is_a_502(workdir):
    from conftest import Server, free_port

    server = Server(workdir / "unreachable", ["--openai-base-url", f"http://127.0.0.1:{free_port()}"]).start()
    try:
        with pytest.raises(ServiceException) as caught:
            create(server.api(), "auth0|checked", api_key=VALID)
        assert caught.value.status == 502
        assert "refused" in caught.value.body
    finally:
        server.stop()


def test_updates_check_the_pair_they_leave_behind(api, openai):
    create(api, "auth0|checked", api_key=VALID, organization_key="org-a")
    mark = openai.mark()
    update(api, "auth0|checked", {"organization_key": "org-b"})
    update(api, "auth0|checked", {"organization_key": ""})
    update(api, "auth0|checked", {"api_key_name": "renamed"})
    assert openai.seen_since(mark) == [(f"Bearer {VALID}", "org-b"), (f"Bearer {VALID}", None)]
    with pytest.raises(UnauthorizedException):
        update(api, "auth0|checked", {"api_key": "sk-proj-invalid-e2e-second-Abcd"})
    after = update(api, "auth0|checked")
    assert after.metadata.open_ai.api_key == "sk-...Wxyz"
    assert after.metadata.open_ai.organization_key is None


def test_verification_off_stores_without_a_call(workdir, openai):
    from conftest import Server

    server = Server(workdir / "offline", ["--no-verify-keys"]).start()
    try:
        mark = openai.mark()
        create(server.api(), "auth0|offline", api_key="sk-proj-invalid-but-unchecked-0000")
        assert openai.seen_since(mark) == []
        assert server.log_text().count("key verification is off") == 1
    finally:
        server.stop()
