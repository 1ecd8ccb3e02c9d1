"""Queued turns with real processes: throughput with 1 and 2 workers, and live-event delay.

The example project on a fresh PostgreSQL database (``DATABASE_URL``, default the local
``test`` server), ``TURNS = "queued"`` on django-tasks-db, the offline stand-in taking
``--latency`` seconds per model call. One uvicorn
web process takes the posts; 1, then 2 ``db_worker`` processes play the turns. Printed per
worker count: turns/s, post-to-done p50/p99 (seen on a stream on the web process, i.e.
through LISTEN/NOTIFY), CPU per turn of the web process and of the workers, and the delay
from a worker starting a run (``started_at``, stamped in the transaction that records
``run.started``) to that event arriving on a stream of the web process (p50/p99); then the
ratio 2 workers / 1 worker against the floor ``--floor`` (1.6 by default).

    python bench/bench_queued.py [--conversations 40] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.harness import (  # noqa: E402
    example_env,
    fresh_database,
    migrate_example,
    start_uvicorn,
    stop_process,
    wait_until_up,
    worker_command,
)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _round(env: dict[str, str], web: str, web_pid: int, workers: int, count: int) -> dict:
    procs = [
        subprocess.Popen(
            worker_command("tasks", f"bench-{workers}-{i}"),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(workers)
    ]
    time.sleep(2.0)
    clients = [httpx.Client(timeout=60) for _ in range(count)]
    cids = []
    for client in clients:
        client.get(web + "/api/agents")
        made = client.post(
            web + "/api/conversations",
            json={"agent": "onboarding"},
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        )
        cids.append(made.json()["conversation_id"])
    done: dict[str, float] = {}
    seen_started: dict[str, float] = {}
    run_ids: dict[str, str] = {}
    lock = threading.Lock()

    def watch(client: httpx.Client, cid: str) -> None:
        with client.stream("GET", f"{web}/api/conversations/{cid}/events") as response:
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "run.started":
                    with lock:
                        seen_started[cid] = time.time()
                elif line.startswith("data: ") and kind == "run.succeeded":
                    with lock:
                        done[cid] = time.monotonic()
                    return

    watchers = [
        threading.Thread(target=watch, args=(c, i), daemon=True)
        for c, i in zip(clients, cids, strict=True)
    ]
    for thread in watchers:
        thread.start()
    time.sleep(1.0)
    cpu_web, cpu_workers = _cpu(web_pid), sum(_cpu(p.pid) for p in procs)
    started: dict[str, float] = {}
    begin = time.monotonic()
    for client, cid in zip(clients, cids, strict=True):
        started[cid] = time.monotonic()
        response = client.post(
            f"{web}/api/conversations/{cid}/messages",
            json={"message": "hello"},
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        )
        assert response.status_code == 202, response.text
        run_ids[cid] = response.json()["run_id"]
    for thread in watchers:
        thread.join(timeout=300)
    elapsed = max(done.values()) - begin
    cpu_web = _cpu(web_pid) - cpu_web
    cpu_workers = sum(_cpu(p.pid) for p in procs) - cpu_workers
    # The worker's run.started (stamped started_at in its transaction) -> this stream.
    delays = []
    for client, cid in zip(clients, cids, strict=True):
        run = client.get(f"{web}/api/conversations/{cid}/runs/{run_ids[cid]}").json()
        if run.get("started_at") and cid in seen_started:
            started_at = datetime.fromisoformat(run["started_at"]).timestamp()
            delays.append(seen_started[cid] - started_at)
    for proc in procs:
        stop_process(proc)
    waits = [done[c] - started[c] for c in cids if c in done]
    return {
        "workers": workers,
        "finished": len(done),
        "turns_per_s": len(done) / elapsed,
        "p50": _percentile(waits, 0.5),
        "p99": _percentile(waits, 0.99),
        "web_cpu_ms": 1000 * cpu_web / max(1, len(done)),
        "worker_cpu_ms": 1000 * cpu_workers / max(1, len(done)),
        "delay_p50": _percentile(delays, 0.5) * 1000 if delays else float("nan"),
        "delay_p99": _percentile(delays, 0.99) * 1000 if delays else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--floor", type=float, default=1.6)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    with fresh_database() as url:
        env = example_env(url)
        env.update(
            AGENT_RUNTIME_TURNS="queued",
            AGENT_RUNTIME_STANDIN_LATENCY=str(args.latency),
            AGENT_RUNTIME_LEASE_SECONDS="10",
        )
        migrate_example(env)
        log = Path(tempfile.gettempdir()) / "bench_queued_web.log"
        port, web = start_uvicorn(env, log)
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base, web, log)
        try:
            rows = [_round(env, base, web.pid, n, args.conversations) for n in (1, 2)]
        finally:
            stop_process(web)
    print(
        f"queued turns: {args.conversations} conversations posting at once, the stand-in "
        f"sleeping {args.latency}s per model call"
    )
    for row in rows:
        print(
            f"  {row['workers']} worker(s): {row['finished']} done, {row['turns_per_s']:.2f} "
            f"turns/s, post->done p50 {row['p50']:.2f}s p99 {row['p99']:.2f}s, CPU per turn: "
            f"web {row['web_cpu_ms']:.1f} ms, workers {row['worker_cpu_ms']:.1f} ms; "
            f"worker event -> web stream p50 {row['delay_p50']:.0f} ms p99 "
            f"{row['delay_p99']:.0f} ms"
        )
    ratio = rows[1]["turns_per_s"] / rows[0]["turns_per_s"]
    verdict = "meets" if ratio >= args.floor else "MISSES"
    print(f"  ratio 2 workers / 1 worker: {ratio:.2f} ({verdict} the floor {args.floor})")


if __name__ == "__main__":
    main()
