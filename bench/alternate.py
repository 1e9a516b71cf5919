"""Release binaries of several commits, alternated round by round in one session: updates of 10,000 users
and GET /health at 16 and 64 connections, with the server's CPU per request. This machine's speed drifts
by 2 to 3 times within minutes, so only figures taken side by side, and their ratio to `GET /health` in
the same process, compare commits.

    python3 bench/alternate.py --rounds 3 /path/to/old/external-provider .build/release/external-provider
"""
import argparse
import json
import statistics
import tempfile
from pathlib import Path

import bench


def measure(binary):
    ours = bench.ExternalProvider(binary, Path(tempfile.mkdtemp())).start()
    try:
        ours.seed()
        row = {}
        for connections in (16, 64):
            bench.run_wrk(ours.url, "update", ours.credential, connections, 2)
            figures = {}
            for workload, seconds in (("update", 8), ("health", 5)):
                before = bench.cpu_seconds(ours.process.pid)
                result = bench.run_wrk(ours.url, workload, ours.credential, connections, seconds)
                figures[workload] = result["rps"]
                figures[f"{workload}_cpu_us"] = (bench.cpu_seconds(ours.process.pid) - before) * 1e6 / result["requests"]
            figures["ratio"] = figures["update"] / figures["health"]
            row[connections] = figures
        return row
    finally:
        ours.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", help="where to write every round's figures")
    args = parser.parse_args()
    rounds = {binary: [] for binary in args.binaries}
    for index in range(args.rounds):
        for binary in args.binaries:
            row = measure(binary)
            rounds[binary].append(row)
            print(f"round {index} {binary}: " + "; ".join(
                f"c{c} updates {f['update']:.0f}/s ({f['update_cpu_us']:.0f} µs), health {f['health']:.0f}/s "
                f"({f['health_cpu_us']:.0f} µs), ÷ health {f['ratio']:.3f}" for c, f in row.items()), flush=True)
    print("\nmean ÷ health over every round and load:")
    for binary, rows in rounds.items():
        ratios = [figures["ratio"] for row in rows for figures in row.values()]
        print(f"  {binary}: {statistics.mean(ratios):.3f} (from {min(ratios):.3f} to {max(ratios):.3f}, {len(ratios)} figures)")
    if args.json:
        Path(args.json).write_text(json.dumps(rounds, indent=1))


if __name__ == "__main__":
    main()
