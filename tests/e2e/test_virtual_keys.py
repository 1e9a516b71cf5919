"""Applications as virtual keys (issue 22): what each may call, how often, how many tokens and until when,
enforced on every relayed request before it leaves, through the official `openai` and `anthropic`
packages against the stand-ins; and the usage ledger, whose counts equal what the stand-ins reported."""

import contextlib
import http.client
import json
import re
import sqlite3
import subprocess
import time
import urllib.request

import anthropic
import openai as openai_sdk
import pytest
from google import genai
from google.genai import types as genai_types
from openai import OpenAI

import openai_standin
from conftest import OPENAI, PROVIDERS, Server, new_database, DATABASE_URL
from provider_standins import USAGE
from sdk_models import apps_create
from test_providers import KEYS, USER, key_path, keys_api, put_all

MESSAGES = [{"role": "user", "content": "Hi"}]
# What each stand-in reports per answer, as the ledger counts it: (input, output, cached), input counting
# every input token. Anthropic's `input_tokens` leaves out cache reads and writes, so they are added.
EXPECTED = {
    "openai": openai_standin.USAGE,
    "anthropic": (USAGE["anthropic"][0] + USAGE["anthropic"][2], USAGE["anthropic"][1], USAGE["anthropic"][2]),
    "gemini": USAGE["gemini"], "mistral": USAGE["mistral"], "groq": USAGE["groq"],
}
STORED_NAMES = {"openai": "open_ai"}


def openai_client(server, application_id, provider="openai"):
    return OpenAI(base_url=f"{server.base_url}/relay/{provider}", api_key=application_id, default_headers={"X-User-ID": USER}, max_retries=0)


def anthropic_client(server, application_id):
    return anthropic.Anthropic(base_url=f"{server.base_url}/relay/anthropic", api_key=application_id, default_headers={"X-User-ID": USER},
                               max_retries=0)


def raw(server, method, path, application_id, body=b"", headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request(method, path, body=body, headers={"Authorization": f"Bearer {application_id}", "X-User-ID": USER,
                                                         "Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    answer = (response.status, response.read().decode(errors="replace"), dict(response.getheaders()))
    connection.close()
    return answer


def usage_report(server, *arguments):
    result = server.cli("usage", "--json", *arguments)
    return json.loads(result.stdout)


def ledger_by_provider(server, expected_requests, deadline=10):
    """The ledger by provider once it holds `expected_requests` entries: it is written within a second."""
    stop = time.monotonic() + deadline
    while True:
        report = usage_report(server, "--by", "provider")
        if sum(group["requests"] for group in report["groups"]) >= expected_requests or time.monotonic() > stop:
            return {group["key"]: group for group in report["groups"]}
        time.sleep(0.2)


def metric(server, name, **labels):
    """The value of the metric `name` with these labels (in any order), or 0 if it has none yet."""
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    for found, value in re.findall(rf"^{name}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        if dict(re.findall(r'(\w+)="([^"]*)"', found)) == labels:
            return float(value)
    return 0


# Models.

def test_a_model_outside_the_list_is_refused_before_the_provider_sees_anything(server):
    put_all(server)
    agent = apps_create(server, "agent", "--scope", "relay", "--models", "gpt-4o*", "--models", "claude-haiku-*")
    openai_mark, mark = len(OPENAI.relayed), PROVIDERS.mark()
    client = openai_client(server, agent)
    with pytest.raises(openai_sdk.PermissionDeniedError) as refused:
        client.chat.completions.create(model="gpt-5", messages=MESSAGES)
    assert refused.value.response.text == "Application 'agent' may not call model 'gpt-5': it may call gpt-4o*, claude-haiku-* only."
    claude = anthropic_client(server, agent)
    with pytest.raises(anthropic.PermissionDeniedError):
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=MESSAGES)
    with pytest.raises(anthropic.PermissionDeniedError):
        with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=16, messages=MESSAGES) as stream:
            stream.get_final_message()
    assert len(OPENAI.relayed) == openai_mark and PROVIDERS.since(mark) == [], "a refused request reached a provider"
    # What it may call passes; the model lists show only that.
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content
    assert claude.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=MESSAGES).content[0].text
    assert [model.id for model in claude.models.list()] == ["claude-haiku-4-5"]
    listed = json.loads(raw(server, "GET", "/relay/anthropic/v1/models", agent)[1])
    assert (listed["first_id"], listed["last_id"]) == ("claude-haiku-4-5", "claude-haiku-4-5")
    assert [model["id"] for model in keys_api(server, "GET", key_path(USER, "anthropic", "/models"), application_id=apps_create(
        server, "lister", "--scope", "keys", "--models", "claude-s*"))[1]["models"]] == ["claude-sonnet-4-5"]
    # Paths that name no model pass.
    uploaded = client.files.create(file=("notes.txt", b"hello"), purpose="assistants")
    assert uploaded.filename == "notes.txt"


def test_model_given_twice_is_refused_whatever_the_policy(server):
    put_all(server)
    unlimited = apps_create(server, "plain", "--scope", "relay")
    openai_mark = len(OPENAI.relayed)
    status, text, _ = raw(server, "POST", "/relay/openai/chat/completions", unlimited,
                          b'{"model":"gpt-4o-mini","messages":[],"model":"gpt-5"}')
    assert status == 400 and "'model' more than once" in text
    with pytest.raises(openai_sdk.BadRequestError):
        openai_client(server, unlimited).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_body={"Model": "gpt-5"})
    assert len(OPENAI.relayed) == openai_mark


def test_a_body_the_model_cannot_be_read_from_is_refused_when_the_application_has_a_model_list(server):
    put_all(server)
    agent = apps_create(server, "agent", "--scope", "relay", "--models", "gpt-4o*")
    openai_mark = len(OPENAI.relayed)
    status, text, _ = raw(server, "POST", "/relay/openai/chat/completions", agent, b"model=gpt-5")
    assert (status, text) == (400, "Application 'agent' may call only some models, so the request body must be a JSON object naming its 'model'; this one is not JSON.")
    status, text, _ = raw(server, "POST", "/relay/openai/chat/completions", agent, b'{"messages":[]}')
    assert status == 400 and "must name its 'model'" in text
    status, text, _ = raw(server, "POST", "/relay/openai/batches", agent, b'{"input_file_id":"file-1","endpoint":"/v1/chat/completions"}')
    assert status == 403 and "batches are refused" in text
    huge = b'{"model":"gpt-4o","messages":[{"role":"user","content":"' + b"x" * (9 * 1024 * 1024) + b'"}]}'
    status, text, _ = raw(server, "POST", "/relay/openai/chat/completions", agent, huge)
    assert status == 413 and "at most 8388608 bytes" in text
    assert len(OPENAI.relayed) == openai_mark
    assert metric(server, "external_provider_policy_refusals_total", limit="unreadable_model") == 3


# Providers and expiry.

def test_a_provider_outside_the_list_and_an_expired_id_are_refused(server, workdir):
    put_all(server)
    only_openai = apps_create(server, "only-openai", "--scope", "relay", "--providers", "openai")
    mark = PROVIDERS.mark()
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        anthropic_client(server, only_openai).messages.create(model="claude-haiku-4-5", max_tokens=16, messages=MESSAGES)
    assert refused.value.response.text == "Application 'only-openai' may not use Anthropic: it may use openai only."
    assert PROVIDERS.since(mark) == []
    assert openai_client(server, only_openai).chat.completions.create(model="gpt-4o", messages=MESSAGES).choices

    brief = apps_create(server, "brief", "--scope", "relay", "--expires", "2s")
    assert openai_client(server, brief).chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    time.sleep(2.2)
    openai_mark = len(OPENAI.relayed)
    with pytest.raises(openai_sdk.AuthenticationError) as expired:
        openai_client(server, brief).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert re.fullmatch(r"Application 'brief' expired at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; make a new one, or extend it with `apps update brief --expires …`\.",
                        expired.value.response.text)
    assert len(OPENAI.relayed) == openai_mark
    # Extended, it works again within a second, on every instance.
    assert server.cli("apps", "update", "brief", "--expires", "30d").returncode == 0
    time.sleep(1.0)
    assert openai_client(server, brief).chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    listed = server.cli("apps", "list").stdout
    assert "limits: providers openai" in listed and "limits: expires " in listed
    refused = server.cli("apps", "update", "brief", "--expires", "2020-01-01", check=False)
    assert refused.returncode != 0 and "has passed" in refused.stderr


# Requests a minute.

def test_the_request_past_the_rate_is_refused_with_retry_after(server):
    put_all(server)
    agent = apps_create(server, "agent", "--scope", "relay", "--rpm", "3")
    client = openai_client(server, agent)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    openai_mark = len(OPENAI.relayed)
    with pytest.raises(openai_sdk.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert 55 <= int(refused.value.response.headers["retry-after"]) <= 60
    assert refused.value.response.text.startswith(f"Application 'agent' may send 3 requests a minute with user '{USER}''s keys; retry after")
    assert len(OPENAI.relayed) == openai_mark
    # Per user: another user's requests are counted apart.
    keys_api(server, "PUT", key_path("auth0|other", "openai"), {"api_key": KEYS["openai"]})
    other = OpenAI(base_url=f"{server.base_url}/relay/openai", api_key=agent, default_headers={"X-User-ID": "auth0|other"}, max_retries=0)
    assert other.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices


# Token budgets.

def test_the_first_request_past_the_days_budget_is_refused_counted_from_streamed_and_plain_answers(server):
    put_all(server)
    per_answer = sum(EXPECTED["openai"][:2])
    agent = apps_create(server, "agent", "--scope", "relay", "--tokens-per-day", str(3 * per_answer - 1))
    client = openai_client(server, agent)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    streamed = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert streamed[-1].usage.total_tokens == per_answer
    # A stream that would report no usage cannot be counted, so it is refused.
    openai_mark = len(OPENAI.relayed)
    with pytest.raises(openai_sdk.BadRequestError) as unmetered:
        list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "set \"stream_options\": {\"include_usage\": true}" in unmetered.value.response.text
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai_sdk.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(OPENAI.relayed) == openai_mark + 1
    text = refused.value.response.text
    assert text.startswith(f"Application 'agent' has used its {3 * per_answer - 1} tokens a day (UTC) with user '{USER}''s keys; the budget resets at ")
    seconds_to_midnight = 86400 - time.time() % 86400
    assert abs(int(refused.value.response.headers["retry-after"]) - seconds_to_midnight) <= 5
    # Raised, the budget lets it through again within a second.
    server.cli("apps", "update", "agent", "--tokens-per-day", "1000000")
    time.sleep(1.0)
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices


def test_anthropic_streams_count_against_a_monthly_budget_even_when_the_client_leaves_early(server):
    put_all(server)
    per_answer = sum(EXPECTED["anthropic"][:2])
    agent = apps_create(server, "agent", "--scope", "relay", "--tokens-per-month", str(2 * per_answer - 1))
    claude = anthropic_client(server, agent)
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=16, messages=MESSAGES) as stream:
        assert stream.get_final_message().usage.output_tokens == EXPECTED["anthropic"][1]
    # A client that reads the first event and leaves: the answer is still read to its usage.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", "/relay/anthropic/v1/messages",
                       body=json.dumps({"model": "claude-haiku-4-5", "max_tokens": 16, "stream": True, "messages": MESSAGES}),
                       headers={"x-api-key": agent, "X-User-ID": USER, "Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200 and response.readline().startswith(b"event: message_start")
    connection.close()
    time.sleep(1.0)
    mark = PROVIDERS.mark()
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=MESSAGES)
    assert PROVIDERS.since(mark) == []


def test_what_spends_past_the_count_is_refused_for_a_budget_and_credentials_for_any_limit(server):
    put_all(server)
    budgeted = apps_create(server, "budgeted", "--scope", "relay", "--tokens-per-day", "1000000")
    openai_mark, mark = len(OPENAI.relayed), PROVIDERS.mark()
    with pytest.raises(anthropic.PermissionDeniedError) as batch:
        anthropic_client(server, budgeted).messages.batches.create(requests=[
            {"custom_id": "1", "params": {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": MESSAGES}}])
    assert "batches and jobs spend tokens later" in batch.value.response.text
    status, text, _ = raw(server, "POST", "/relay/openai/responses", budgeted, b'{"model":"gpt-4o","input":"Hi","background":true}')
    assert status == 400 and "leave out \"background\"" in text
    status, text, _ = raw(server, "POST", "/relay/openai/realtime/client_secrets", budgeted, b'{"session":{"type":"realtime","model":"gpt-realtime"}}')
    assert status == 403 and "makes a credential for use directly with the provider" in text
    limited = apps_create(server, "limited", "--scope", "relay", "--models", "gemini-*")
    status, _, _ = raw(server, "POST", "/relay/gemini/v1alpha/auth_tokens", limited, b'{"uses":1}', {"x-goog-api-key": limited})
    assert status == 403
    assert len(OPENAI.relayed) == openai_mark and PROVIDERS.since(mark) == []
    assert metric(server, "external_provider_policy_refusals_total", limit="credential") == 2
    assert metric(server, "external_provider_policy_refusals_total", limit="unmetered") == 2


def test_a_budgeted_client_that_leaves_before_the_answer_begins_is_counted_all_the_same(server):
    put_all(server)
    agent = apps_create(server, "agent", "--scope", "relay", "--tokens-per-day", "1000000")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", "/relay/openai/chat/completions", body=json.dumps({"model": "slow-model", "messages": MESSAGES}),
                       headers={"Authorization": f"Bearer {agent}", "X-User-ID": USER, "Content-Type": "application/json"})
    time.sleep(0.5)
    connection.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        groups = {group["key"]: group for group in usage_report(server, "--by", "model")["groups"]}
        if "slow-model" in groups:
            break
        time.sleep(0.2)
    assert groups["slow-model"]["input_tokens"] == EXPECTED["openai"][0] and groups["slow-model"]["output_tokens"] == EXPECTED["openai"][1]


# The ledger.

def test_the_ledger_counts_what_every_provider_reported_streamed_and_not(server):
    put_all(server)
    agent = apps_create(server, "agent", "--scope", "relay")
    for provider in ("openai", "mistral", "groq"):
        client = openai_client(server, agent, provider)
        client.chat.completions.create(model="some-model", messages=MESSAGES)
        list(client.chat.completions.create(model="some-model", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    claude = anthropic_client(server, agent)
    claude.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=MESSAGES)
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=16, messages=MESSAGES) as stream:
        stream.get_final_message()
    gemini = genai.Client(api_key=agent, http_options=genai_types.HttpOptions(base_url=f"{server.base_url}/relay/gemini", headers={"X-User-ID": USER}))
    gemini.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    list(gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"))
    # An answer with no usage is recorded with its status and no tokens.
    list(openai_client(server, agent).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))

    ledger = ledger_by_provider(server, 11)
    for provider, (input_tokens, output_tokens, cached) in EXPECTED.items():
        group = ledger[STORED_NAMES.get(provider, provider)]
        requests = 3 if provider == "openai" else 2
        assert (group["requests"], group["errors"], group["input_tokens"], group["output_tokens"], group["cached_tokens"]) == (
            requests, 0, 2 * input_tokens, 2 * output_tokens, 2 * cached), provider
    by_model = {group["key"]: group["requests"] for group in usage_report(server, "--by", "model", "--app", "agent")["groups"]}
    assert by_model == {"some-model": 6, "gpt-4o": 1, "claude-haiku-4-5": 2, "gemini-2.5-flash": 2}
    # The same report over HTTP, for an application with the admin scope only.
    admin = apps_create(server, "auditor", "--scope", "admin")
    request = urllib.request.Request(server.base_url + "/v1/usage?by=provider", headers={"X-Application-ID": admin})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == usage_report(server, "--by", "provider")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(server.base_url + "/v1/usage", headers={"X-Application-ID": agent}), timeout=10)
    assert refused.value.code == 403
    assert metric(server, "external_provider_tokens_total", provider="anthropic", kind="output") == 2 * EXPECTED["anthropic"][1]
    assert metric(server, "external_provider_tokens_total", provider="gemini", kind="input") == 2 * EXPECTED["gemini"][0]


@contextlib.contextmanager
def ledger_unwritable(server):
    """Holds the lock that writing the ledger needs, as a store that cannot take writes would, while
    reads (the relay's key) go on."""
    if server.database_url:
        holder = subprocess.Popen(["psql", server.database_url, "-q"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        holder.stdin.write("BEGIN; LOCK TABLE usage_event IN EXCLUSIVE MODE; SELECT pg_sleep(0);\n")
        holder.stdin.flush()
        time.sleep(0.5)
        try:
            yield
        finally:
            holder.stdin.write("COMMIT;\n")
            holder.stdin.close()
            holder.wait(timeout=10)
    else:
        holder = sqlite3.connect(server.data_dir / "external-provider.sqlite", isolation_level=None, timeout=1)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("COMMIT")
            holder.close()


def test_a_store_outage_the_queue_holds_loses_no_entry_and_past_its_bound_drops_are_counted(workdir, request):
    for store in (["sqlite", "postgres"] if DATABASE_URL else ["sqlite"]):
        database_url = new_database() if store == "postgres" else None
        server = Server(workdir / store, extra_args=["--usage-queue", "10"], database_url=database_url).start()
        try:
            put_all(server)
            agent = apps_create(server, "agent", "--scope", "relay")
            client = openai_client(server, agent)
            with ledger_unwritable(server):
                for _ in range(8):
                    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                time.sleep(1.0)
            assert ledger_by_provider(server, 8, deadline=20)["open_ai"]["requests"] == 8, store
            with ledger_unwritable(server):
                for _ in range(14):
                    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                time.sleep(1.0)
            assert ledger_by_provider(server, 18, deadline=20)["open_ai"]["requests"] == 18, store
            time.sleep(1.0)
            assert ledger_by_provider(server, 18)["open_ai"]["requests"] == 18, store
            assert metric(server, "external_provider_usage_entries_dropped_total") == 4, store
            assert "usage ledger entries were dropped" in server.log_since_launch()
        finally:
            server.stop()


@pytest.mark.skipif(not DATABASE_URL, reason="needs the PostgreSQL test cluster")
def test_two_instances_on_postgresql_share_one_budget_and_see_a_policy_change_within_a_second(workdir):
    database = new_database()
    first = Server(workdir / "first", database_url=database).start()
    # The second serves the same database; `default` is the first's.
    second = Server(workdir / "second", database_url=database).launch().wait_until_healthy()
    try:
        put_all(first)
        per_answer = sum(EXPECTED["openai"][:2])
        agent = apps_create(first, "agent", "--scope", "relay", "--tokens-per-day", str(2 * per_answer + 1))
        openai_client(first, agent).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        time.sleep(1.0)
        openai_client(second, agent).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        time.sleep(1.0)
        openai_client(first, agent).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        time.sleep(1.0)
        openai_mark = len(OPENAI.relayed)
        for instance in (second, first):
            with pytest.raises(openai_sdk.RateLimitError):
                openai_client(instance, agent).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert len(OPENAI.relayed) == openai_mark
        # A model list set through one instance's store holds on the other within a second.
        assert first.cli("apps", "update", "agent", "--clear", "tokens-per-day", "--models", "o3").returncode == 0
        time.sleep(1.0)
        with pytest.raises(openai_sdk.PermissionDeniedError):
            openai_client(second, agent).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert openai_client(second, agent).chat.completions.create(model="o3", messages=MESSAGES).choices
    finally:
        first.stop()
        second.stop()
