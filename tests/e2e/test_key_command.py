"""`key set`, `key remove` and `models`: the terminal commands that talk to a running server through the
Swift client. The key is typed at a pseudo-terminal and must never show on it, nor in the process's
arguments, and must be what the server stores."""

import os
import pty
import select
import subprocess
import time
from pathlib import Path

from conftest import BINARY, ROOT, free_port, server_environment

# The example package in Examples/SwiftClient, built by scripts/test.
EXAMPLE = Path(os.environ.get("EXTERNAL_PROVIDER_EXAMPLE_BIN", ROOT / "Examples" / "SwiftClient" / ".build" / "debug" / "store-my-key"))
from conftest import sqlite_only
from sdk_models import SENT_SECRETS, update

KEY = "sk-proj-TERMINAL-0123456789abcdefWxyz"
SECOND_KEY = "sk-proj-TERMINAL-second-0123456789Qrst"


def command(server, *arguments):
    return [str(BINARY), *arguments, "--server", server.base_url, "--app-id-file", str(server.data_dir / "application-id")]


def run(server, *arguments, stdin=""):
    return subprocess.run(command(server, *arguments), input=stdin, capture_output=True, text=True, env=server_environment(), timeout=30)


def read_until(descriptor, marker, seen, deadline):
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([descriptor], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(descriptor, 4096)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_key_set_through_a_terminal_never_shows_the_key_and_stores_it(server, api):
    SENT_SECRETS.update([KEY, SECOND_KEY])
    controller, terminal = pty.openpty()
    process = subprocess.Popen(command(server, "key", "set", "--user", "auth0|terminal", "--name", "laptop"),
                               stdin=terminal, stdout=terminal, stderr=terminal, env=server_environment(), close_fds=True)
    os.close(terminal)
    deadline = time.monotonic() + 30
    shown = read_until(controller, b"(not shown): ", b"", deadline)
    assert b"(not shown): " in shown, shown
    os.write(controller, KEY.encode() + b"\n")
    # While it runs, nothing in its arguments is the key.
    arguments = open(f"/proc/{process.pid}/cmdline", "rb").read()
    shown = read_until(controller, b"for user 'auth0|terminal'", shown, deadline)
    assert process.wait(timeout=30) == 0, shown
    shown = read_until(controller, b"\x00never\x00", shown, time.monotonic() + 0.5)  # whatever is left
    os.close(controller)

    assert KEY.encode() not in shown and KEY[-8:].encode() not in shown
    assert KEY.encode() not in arguments and b"auth0|terminal" in arguments
    assert b"stored the OpenAI key sk-...Wxyz for user 'auth0|terminal', named 'laptop'" in shown

    # The SDK sees the key it stored, and the stand-in OpenAI was asked about exactly that key.
    seen = update(api, "auth0|terminal", {"organization_key": "org-after"})
    assert seen.metadata.open_ai.api_key == "sk-...Wxyz" and seen.metadata.open_ai.api_key_name == "laptop"

    # Piped, not typed: the second key replaces the first, and the name stays.
    replaced = run(server, "key", "set", "--user", "auth0|terminal", stdin=SECOND_KEY + "\n")
    assert replaced.returncode == 0, replaced.stderr
    assert SECOND_KEY not in replaced.stdout + replaced.stderr
    assert "sk-...Qrst" in replaced.stdout and "named 'laptop'" in replaced.stdout and "organization org-after" in replaced.stdout
    assert update(api, "auth0|terminal").metadata.open_ai.api_key == "sk-...Qrst"

    listed = run(server, "models", "--user", "auth0|terminal")
    assert listed.returncode == 0 and "gpt-4o" in listed.stdout.split(), listed.stderr

    removed = run(server, "key", "remove", "--user", "auth0|terminal")
    assert removed.returncode == 0 and "no OpenAI key stored now" in removed.stdout
    assert update(api, "auth0|terminal").metadata.open_ai is None


def test_each_failure_is_one_line_with_its_own_exit_status(server):
    SENT_SECRETS.add("sk-proj-invalid-0123456789abcdefWxyz")
    cases = [
        (("key", "set", "--user", "auth0|refused"), "sk-proj-invalid-0123456789abcdefWxyz\n", 3, "invalid_api_key"),
        (("models", "--user", "auth0|nobody"), "", 4, "has no OpenAI key"),
        (("key", "set", "--user", "auth0|x", "--provider", "cohere"), KEY + "\n", 2, "unknown provider 'cohere'"),
        (("key", "set", "--user", ""), KEY + "\n", 2, "user"),
        (("key", "set", "--user", "auth0|empty"), "\n", 2, "no key given"),
    ]
    for arguments, stdin, status, words in cases:
        result = run(server, *arguments, stdin=stdin)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == status and len(lines) == 1 and words in lines[0], (arguments, result.returncode, result.stderr)
        assert KEY not in result.stderr
    nowhere = subprocess.run([str(BINARY), "key", "remove", "--user", "auth0|x", "--server", f"http://127.0.0.1:{free_port()}",
                              "--app-id-file", str(server.data_dir / "application-id")],
                             capture_output=True, text=True, env=server_environment(), timeout=30)
    assert nowhere.returncode == 5 and "could not be reached" in nowhere.stderr
    assert server.application_id not in nowhere.stderr


@sqlite_only
def test_the_example_package_stores_a_key_through_the_client(server, api):
    assert EXAMPLE.exists(), f"{EXAMPLE} is missing: build Examples/SwiftClient first (scripts/test does)"
    key = "sk-proj-EXAMPLE-0123456789abcdefMnop"
    SENT_SECRETS.add(key)
    environment = {**server_environment(), "EXTERNAL_PROVIDER_DATA_DIR": str(server.data_dir)}
    for expected in ["stored sk-...Mnop for auth0|example"] * 2:  # a create, then an update of the same user
        result = subprocess.run([str(EXAMPLE), "auth0|example", server.base_url], input=key + "\n", capture_output=True, text=True,
                                env=environment, timeout=30)
        assert result.returncode == 0 and result.stdout.strip() == expected, result.stderr
    assert update(api, "auth0|example").metadata.open_ai.api_key_name == "from store-my-key"
