"""Starts the real `external-provider serve` binary on a free port with a temporary data dir."""

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from pieces_os_client.api.external_provider_api import ExternalProviderApi
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("EXTERNAL_PROVIDER_BIN", ROOT / ".build" / "debug" / "external-provider"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


from openai_standin import StandInOpenAI
from provider_standins import ProviderStandIns

# The session's stand-in OpenAI: every server checks keys with it (verification is on, as by default).
OPENAI = StandInOpenAI()
# And the other providers' stand-ins, each under a path of its own on one server.
PROVIDERS = ProviderStandIns()

# Every server of the session logs at trace level here; the session ends by searching all of it for keys.
LOG_DIR = Path(tempfile.mkdtemp(prefix="ep-e2e-logs-"))


# The PostgreSQL cluster the test command started; the suites that take the `server` fixture run on it too.
DATABASE_URL = os.environ.get("EXTERNAL_PROVIDER_TEST_DATABASE_URL")
STORES = ["sqlite", "postgres"] if DATABASE_URL else ["sqlite"]


def server_environment():
    """The runner's environment without any setting of ours: each server gets only the flags its test gives."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith("EXTERNAL_PROVIDER_") and name != "DATABASE_URL"}


# For a test of what only the data dir's store has (its files, SQLite's own locks).
sqlite_only = pytest.mark.parametrize("server", ["sqlite"], indirect=True)


def new_database() -> str:
    """A new, empty database on the test cluster, and the URL that names it."""
    name = "e2e_" + os.urandom(8).hex()
    subprocess.run(["psql", DATABASE_URL, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    base, query = DATABASE_URL.split("?", 1) if "?" in DATABASE_URL else (DATABASE_URL, "")
    return base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


class Server:
    """One server process at trace level; `restart()` keeps the port and the data dir (or database).

    With `database_url`, the keys live in PostgreSQL under a master key in the work dir, and the
    application `default` is made with `apps create`, its id written where a data dir would hold it."""

    def __init__(self, data_dir: Path, extra_args=(), preexec_fn=None, database_url=None, wrapper=()):
        self.data_dir = data_dir
        # A command the server runs under, e.g. strace: `process` is then the wrapper's.
        self.wrapper = list(wrapper)
        self.database_url = database_url
        # Where the store is, for `cli()` as for `serve`.
        self.store_args = ["--data-dir", str(data_dir)]
        if database_url:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Instances of one database share its master key: the first makes it.
            key_file = data_dir.parent / "master.key"
            if not key_file.exists():
                key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
                key_file.chmod(0o600)
            self.store_args = ["--database-url", database_url, "--master-key-file", str(key_file)]
            extra_args = [*self.store_args, *extra_args]
        self.preexec_fn = preexec_fn
        # The first start binds port 0 and reads the port the system chose from the `serving` line; a
        # restart asks for the same port again, so clients keep their address.
        self.port = None
        self.extra_args = list(extra_args)
        self.log_path = LOG_DIR / f"server-{os.urandom(6).hex()}.log"
        self.process = None

    def start(self):
        self.launch().wait_until_healthy()
        if self.database_url and not (self.data_dir / "application-id").exists():
            made = self.cli("apps", "create", "default", "--scope", "keys", "--scope", "relay")
            (self.data_dir / "application-id").write_text(made.stdout)
        if (self.data_dir / "application-id").exists():
            _ = self.application_id  # recorded, so the log scan looks for it whether or not a test uses it
        return self

    def cli(self, *arguments, check=True):
        """Runs a command of the binary against this server's store."""
        return subprocess.run([str(BINARY), *arguments, *self.store_args], capture_output=True, text=True, check=check,
                              stdin=subprocess.DEVNULL, env=server_environment())

    def launch(self):
        """Starts the process without waiting for it to serve, so several can start at once."""
        self.log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self.wrapper, str(BINARY), "serve", "--port", str(self.port or 0), "--data-dir", str(self.data_dir), "--log-level", "trace",
             "--openai-base-url", OPENAI.base_url, *PROVIDERS.base_url_flags(), "--verify-timeout", "2", *self.extra_args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=self.preexec_fn,
            env=server_environment(),
        )
        return self

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_until_healthy(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_text()}")
            if self.port is None:
                serving = [SERVING_PORT.search(line) for line in self.log_since_launch().splitlines() if "serving" in line]
                found = [match for match in serving if match]
                if not found:
                    time.sleep(0.02)
                    continue
                self.port = int(found[0][1])
            try:
                with urllib.request.urlopen(self.base_url + "/health", timeout=1) as response:
                    if response.read() == b"ok":
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not become healthy within 30 s:\n" + self.log_text())

    def stop(self, sig=signal.SIGTERM):
        """Stops the server; one asked to stop (SIGTERM) must exit cleanly."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)
            if sig == signal.SIGTERM:
                assert self.process.returncode == 0, f"serve exited with {self.process.returncode}:\n{self.log_since_launch()[-2000:]}"
        if self.process:
            self.log.close()

    def restart(self):
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_since_launch(self) -> str:
        """What this process wrote: a log file is per port, and a port may come round again."""
        return self.log_path.read_bytes()[self.log_start:].decode(errors="replace") if self.log_path.exists() else ""

    @property
    def application_id(self) -> str:
        """The id of the `default` application, as a local client finds it."""
        from sdk_models import SENT_SECRETS

        application_id = (self.data_dir / "application-id").read_text().strip()
        SENT_SECRETS.add(application_id)
        return application_id

    def api(self, application_id="default") -> ExternalProviderApi:
        configuration = Configuration(host=self.base_url)
        if application_id == "default":
            application_id = self.application_id
        if application_id is not None:
            configuration.api_key["application"] = application_id
        return ExternalProviderApi(ApiClient(configuration))


# The port in the `serving` line, as text (`port=39300`) or JSON (`"port":"39300"`).
SERVING_PORT = re.compile(r'"?\bport"?\s*[=:]\s*"?(\d+)')
KEY_SHAPE = re.compile(r"(?:sk-|gsk_|AIza)[A-Za-z0-9_-]{6,}")


@pytest.fixture(scope="session", autouse=True)
def no_key_in_any_log():
    """Every key any test sent must be absent from every server log of the session, at trace level."""
    from sdk_models import SENT_SECRETS

    yield
    OPENAI.close()
    PROVIDERS.close()
    logs = {path.name: path.read_text(errors="replace") for path in LOG_DIR.glob("*.log")}
    assert logs, "no server logs were captured"
    assert any("trace" in text for text in logs.values()), "the servers did not log at trace level"
    assert SENT_SECRETS, "nothing was recorded to search the logs for"
    leaks = [(name, secret) for name, text in logs.items() for secret in SENT_SECRETS if secret in text]
    # Keys no test recorded (raw requests, the fuzzer's, the crash test's) are caught by their shape: any
    # `sk-` followed by key characters. A masked key (`sk-...Wxyz`) does not have it.
    leaks += [(name, match) for name, text in logs.items() for match in KEY_SHAPE.findall(text)]
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    assert not leaks, f"keys found in logs: {[name for name, _ in leaks]}"


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="ep-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=STORES)
def server(workdir, request):
    """A server on each store: the data dir's SQLite, and a new database on the test cluster."""
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: run `swift build` first (scripts/test does)")
    database_url = new_database() if request.param == "postgres" else None
    running = Server(workdir / "data", database_url=database_url).start()
    yield running
    running.stop()


@pytest.fixture
def api(server) -> ExternalProviderApi:
    return server.api()


@pytest.fixture
def openai():
    return OPENAI
