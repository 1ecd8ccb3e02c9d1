"""The event stream under a WSGI server, as ``manage.py runserver`` serves a project.

Django buffers an asynchronous streaming body whole under WSGI, so the endless event
stream sent 0 bytes there. Under WSGI the view now streams a polled synchronous iterator.
The server here is the standard library's WSGI server, which runserver is built on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from django.core.handlers.wsgi import WSGIHandler

from tests.http_api.test_http_turns import SSEReader


class _ThreadingWSGIServer(WSGIServer):
    """One thread per request, like runserver's server (a stream holds its thread)."""

    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._handle, args=(request, client_address), daemon=True)
        thread.start()

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        finally:
            self.shutdown_request(request)


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def wsgi_url(transactional_db: Any) -> Iterator[str]:
    server = make_server(
        "127.0.0.1", 0, WSGIHandler(), server_class=_ThreadingWSGIServer, handler_class=_Quiet
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_event_stream_sends_events_under_a_wsgi_server(
    make_api: Any, users: Any, agents: Any, wsgi_url: str
) -> None:
    api = make_api(users[0])
    cid = api.start("onboarding-agent", "hello").json()["conversation_id"]
    with (
        httpx.Client(timeout=15, cookies=api.client.cookies) as client,
        client.stream("GET", f"{wsgi_url}/api/conversations/{cid}/events") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = SSEReader(response).until("assistant.message")
    assert [e[1] for e in events] == [
        "run.started",
        "tool.call",
        "tool.result",
        "journey.step_changed",
        "assistant.message",
    ]
