"""Queued turns with real processes (issue 13): two uvicorn web processes of the example
project, two workers of an engine (django-tasks-db's ``db_worker``, or Celery on the local
RabbitMQ with live events over Redis), one database (the suite's kind: PostgreSQL with
LISTEN/NOTIFY, or SQLite polling); see ``harness.queued_site``.

A message posted through web A is answered by a worker; a stream on web B shows the run
live (deltas in order, attributed by run id); rapid messages on one conversation are
answered in order; many conversations finish with nothing lost; a worker killed with
SIGKILL mid-turn is recovered once its lease expires, without duplicating the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.browser.harness import QueuedSite as Site
from tests.browser.harness import queued_site, stop_process

AGENT = "onboarding"


class Client:
    """A browser-like client: one anonymous session, used against either web process."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.http = httpx.Client(timeout=30)
        self.http.get(site.webs[0] + "/api/agents").raise_for_status()

    def post(self, web: int, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(
            f"{self.site.webs[web]}/api/{path}",
            json=body,
            headers={"X-CSRFToken": self.http.cookies["csrftoken"]},
        )

    def get(self, web: int, path: str) -> Any:
        response = self.http.get(f"{self.site.webs[web]}/api/{path}")
        response.raise_for_status()
        return response.json()

    def start(self) -> str:
        created = self.post(0, "conversations", {"agent": AGENT})
        assert created.status_code == 201, created.text
        return str(created.json()["conversation_id"])

    def send(self, cid: str, text: str, web: int = 0) -> dict[str, Any]:
        response = self.post(web, f"conversations/{cid}/messages", {"message": text})
        assert response.status_code == 202, response.text
        data = response.json()
        assert response.headers["Location"].endswith(f"/runs/{data['run_id']}")
        return dict(data)

    def wait(self, cid: str, run_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(1, f"conversations/{cid}/runs/{run_id}")
            if run["status"] in ("done", "failed"):
                return dict(run)
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not finish: {run}\n{self.site.tail()}")


class Stream:
    """The conversation's event stream on one web process, read in a thread."""

    def __init__(self, client: Client, web: int, cid: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.opened = threading.Event()
        self._stop = threading.Event()
        url = f"{client.site.webs[web]}/api/conversations/{cid}/events"
        self._thread = threading.Thread(target=self._read, args=(client, url), daemon=True)
        self._thread.start()
        assert self.opened.wait(15), "the stream did not open"

    def _read(self, client: Client, url: str) -> None:
        with client.http.stream("GET", url, timeout=httpx.Timeout(60, read=60)) as response:
            self.opened.set()
            kind = ""
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    self.events.append((kind, json.loads(line[6:])))

    def until(self, predicate: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(predicate(kind, data) for kind, data in list(self.events)):
                return
            time.sleep(0.05)
        raise AssertionError(f"not seen on the stream: {self.events[-20:]}")

    def close(self) -> None:
        self._stop.set()


def _channel(site: Site) -> bool:
    """Whether events cross processes on a channel (else SQLite's streams poll the table)."""
    return site.env["DATABASE_URL"].startswith(("postgres://", "postgresql://")) or site.env.get(
        "AGENT_RUNTIME_LIVE_EVENTS", ""
    ).startswith("redis://")


def _transcript(client: Client, cid: str) -> list[tuple[str, str]]:
    detail = client.get(1, f"conversations/{cid}")
    return [
        (m["role"], m.get("content") or "")
        for m in detail["messages"]
        if m["role"] in ("user", "assistant") and m.get("content")
    ]


def _scenario(site: Site) -> None:
    client = Client(site)
    cid = client.start()

    # Post through web A, stream from web B: the run's deltas arrive in order, by run id.
    stream = Stream(client, 1, cid)
    try:
        queued = client.send(cid, "hello")
        assert queued["status"] == "queued" and queued["conversation_id"] == cid
        stream.until(lambda k, d: k == "run.succeeded" and d["run_id"] == queued["run_id"])
    finally:
        stream.close()
    mine = [(k, d) for k, d in stream.events if d.get("run_id") == queued["run_id"]]
    kinds = [k for k, _ in mine]
    assert kinds[0] == "run.started" and kinds[-1] == "run.succeeded", kinds
    assert mine[0][1]["message_id"] == queued["message_id"]
    reply = mine[-1][1]["reply"]
    if _channel(site):
        # Deltas cross processes only on a channel (LISTEN/NOTIFY); SQLite polls the table.
        assert "assistant.delta" in kinds
        last_text = max(i for i, k in enumerate(kinds) if k == "assistant.message")
        streamed = "".join(
            d["delta"] for i, (k, d) in enumerate(mine) if k == "assistant.delta" and i < last_text
        )
        assert streamed.endswith(reply), (streamed, reply)
    else:
        assert "assistant.delta" not in kinds
    run = client.wait(cid, queued["run_id"])
    assert run["status"] == "done" and run["turn"]["reply"] == reply

    # Five rapid messages on one conversation: all accepted, answered in arrival order.
    texts = ["Ada Lovelace", "ada@example.com", "thanks", "what now?", "bye"]
    posted = [client.send(cid, text, web=i % 2) for i, text in enumerate(texts)]
    runs = [client.wait(cid, p["run_id"]) for p in posted]
    assert [r["status"] for r in runs] == ["done"] * 5, runs
    finished = [r["finished_at"] for r in runs]
    assert finished == sorted(finished)
    said = [text for role, text in _transcript(client, cid) if role == "user"]
    assert said == ["hello", *texts]
    roles = [role for role, _ in _transcript(client, cid)]
    assert roles == ["user", "assistant"] * 6, roles

    # Many conversations in parallel: every message answered once, nothing lost.
    def one(index: int) -> tuple[str, str]:
        other = Client(site)
        cid = other.start()
        run = other.wait(cid, other.send(cid, f"hello {index}")["run_id"], timeout=120)
        assert run["status"] == "done", run
        return cid, run["turn"]["reply"]

    count = 50 if site.engine == "tasks" else 20
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, range(count)))
    assert len({cid for cid, _ in results}) == count
    assert all(reply for _, reply in results)


def _worker_killed_mid_turn(site: Site) -> None:
    """SIGKILL the workers while a turn runs; a fresh worker plays it once the lease ends."""
    for worker in site.workers:
        stop_process(worker)
    site.workers.clear()
    slow = site.start_worker("slow", AGENT_RUNTIME_STANDIN_LATENCY="3")
    client = Client(site)
    cid = client.start()
    queued = client.send(cid, "hello")
    # Generous: under CI's load a fresh worker first boots, then drains the deferred
    # re-checks the earlier workers left in the queue (one per turn), before this run.
    deadline = time.monotonic() + 120
    while client.get(1, f"conversations/{cid}/runs/{queued['run_id']}")["status"] != "running":
        assert time.monotonic() < deadline, site.tail()
        time.sleep(0.05)
    os.kill(slow.pid, signal.SIGKILL)
    slow.wait(timeout=10)
    site.workers.remove(slow)
    site.start_worker("rescuer")
    run = client.wait(cid, queued["run_id"], timeout=120)
    assert run["status"] == "done" and run["attempts"] == 2, run
    transcript = _transcript(client, cid)
    assert [text for role, text in transcript if role == "user"] == ["hello"]
    assert [role for role, _ in transcript] == ["user", "assistant"]


def test_queued_turns_on_django_tasks_with_real_workers() -> None:
    with queued_site("tasks") as site:
        try:
            _scenario(site)
            _worker_killed_mid_turn(site)
        except BaseException:
            print(site.tail())
            raise


def test_queued_turns_on_celery_with_real_workers() -> None:
    for service, port in (("RabbitMQ", 5672), ("Redis", 6379)):
        if not _listening(port):
            pytest.fail(f"{service} is not running on 127.0.0.1:{port} (the Celery test needs it)")
    with queued_site("celery") as site:
        try:
            _scenario(site)
            _worker_killed_mid_turn(site)
        except BaseException:
            print(site.tail())
            raise


def _listening(port: int) -> bool:
    import socket

    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2):
        return True
    return False
