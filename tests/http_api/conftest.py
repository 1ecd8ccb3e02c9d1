"""A real ASGI server (uvicorn in a thread, random port) and HTTP clients for the API tests."""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from agent_runtime_framework.django.host import registry
from agent_runtime_framework.django.host import turns as host
from agent_runtime_framework.django.store import db
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from tests.http_api.rules import RuleLLM, front_desk
from tests.journeys import OnboardingAgent


def close_db_threads() -> None:
    """Database threads and their connections do not outlive a test."""
    db.shutdown_db_threads()
    gc.collect()


class LiveServer:
    """uvicorn serving ``tests.asgi`` on 127.0.0.1 in a background thread."""

    def __init__(self) -> None:
        import uvicorn

        from tests.asgi import application

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            application, lifespan="off", log_level="warning", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


@pytest.fixture(scope="session")
def asgi_server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[LiveServer]:
    server = LiveServer()
    server.start()
    yield server
    server.stop()


class Api:
    """An httpx client of the API with a session (user or anonymous) and CSRF header."""

    def __init__(self, base: str, client: httpx.Client) -> None:
        self.base = base
        self.client = client

    def url(self, path: str) -> str:
        return f"{self.base}/api/{path.lstrip('/')}"

    def csrf(self) -> str:
        if "csrftoken" not in self.client.cookies:
            self.client.get(self.url("agents"))
        return self.client.cookies["csrftoken"]

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(self.url(path), **kwargs)

    def post(
        self, path: str, json: Any = None, *, csrf: bool = True, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if csrf:
            headers.setdefault("X-CSRFToken", self.csrf())
        return self.client.post(self.url(path), json=json, headers=headers, **kwargs)

    def start(self, agent: str, message: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"agent": agent}
        if message is not None:
            body["message"] = message
        return self.post("conversations", body)

    def say(self, conversation_id: str, message: str, **kwargs: Any) -> httpx.Response:
        return self.post(
            f"conversations/{conversation_id}/messages", {"message": message}, **kwargs
        )


@pytest.fixture
def make_api(asgi_server: LiveServer, transactional_db: Any) -> Iterator[Callable[..., Api]]:
    """``make_api(user=None)``: a logged-in client for ``user`` (anonymous without one)."""
    from django.test import Client

    clients: list[httpx.Client] = []

    def make(user: Any = None) -> Api:
        client = httpx.Client(timeout=30)
        clients.append(client)
        if user is not None:
            django_client = Client()
            django_client.force_login(user)
            client.cookies.set("sessionid", django_client.cookies["sessionid"].value)
        return Api(asgi_server.url, client)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def users(transactional_db: Any) -> Any:
    from django.contrib.auth import get_user_model

    model = get_user_model()
    return (
        model.objects.create_user("alice"),
        model.objects.create_user("bob"),
    )


@pytest.fixture
def llm() -> RuleLLM:
    return RuleLLM()


@pytest.fixture
def agents(llm: RuleLLM) -> Iterator[dict[str, Any]]:
    """The onboarding journey and the front desk (router), registered for one test."""
    onboarding = OnboardingAgent(llm_client=llm, memory=DjangoMemoryManager(busy_wait=0.3))
    desk = front_desk(llm)
    desk.memory = DjangoMemoryManager(busy_wait=0.3)
    for agent in desk.agents.values():
        agent.memory = desk.memory
        agent._memory_is_default = False
    registered = {"onboarding-agent": onboarding, "front-desk": desk}
    for key, agent in registered.items():
        registry.register_runtime(agent, key=key)
    yield registered
    for key in registered:
        registry.unregister_runtime(key)


@pytest.fixture(autouse=True)
def _db_threads_closed() -> Iterator[None]:
    yield
    close_db_threads()


@pytest.fixture
def host_llm(llm: RuleLLM) -> Iterator[RuleLLM]:
    """Make ``llm`` the host's default model (for agents registered without one)."""
    host._reset_host_llm()
    host._default_llm = llm
    yield llm
    host._reset_host_llm()
