"""The framework's ASGI handler: known middleware hooks on the event loop, same semantics.

Requests go through the real ASGI entry point (``ASGIHandler.__call__``) in process with
``httpx.ASGITransport``; the thread hops are counted on the test's event loop (every
``run_in_executor``, which is how ``sync_to_async`` reaches its thread). The same
scenarios run against Django's own ``ASGIHandler`` and must answer the same way.
(tests/http_api's other files drive ``tests.asgi``, i.e. this handler, under uvicorn.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from django.contrib import messages
from django.contrib.auth import alogin, alogout, get_user_model
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import SynchronousOnlyOperation
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.test import override_settings
from django.urls import include, path
from django.utils.deprecation import MiddlewareMixin

from agent_runtime_framework.django import asgi as inline_asgi
from agent_runtime_framework.django.asgi import (
    InlineMiddlewareASGIHandler,
    get_asgi_application,
    inline_policy_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

FULL_STACK = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# -- the views -------------------------------------------------------------------------------


async def floor(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


async def token(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"token": get_token(request)})


async def whoami(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return JsonResponse({"user": user.get_username() or None})


async def count(request: HttpRequest) -> HttpResponse:
    seen = await request.session.aget("count", 0) + 1
    await request.session.aset("count", seen)
    return JsonResponse({"count": seen, "key": request.session.session_key})


async def login(request: HttpRequest) -> HttpResponse:
    name = json.loads(request.body)["username"]
    user = await get_user_model().objects.aget(username=name)
    await alogin(request, user)
    return JsonResponse({"user": name})


async def logout(request: HttpRequest) -> HttpResponse:
    await alogout(request)
    return JsonResponse({"user": None})


async def form(request: HttpRequest) -> HttpResponse:
    """CSRF-protected by the middleware (not exempt), unlike the API's views."""
    return JsonResponse({"posted": dict(request.POST.items()) if request.POST else None})


async def add_message(request: HttpRequest) -> HttpResponse:
    messages.info(request, "saved")
    return JsonResponse({})


def read_messages(request: HttpRequest) -> HttpResponse:
    """A sync view (Django runs it in a thread): the session storage reads the session."""
    return JsonResponse({"messages": [str(m) for m in messages.get_messages(request)]})


class urls:  # a URLconf: anything with urlpatterns
    urlpatterns = [
        path("api/", include("agent_runtime_framework.django.urls")),
        path("floor", floor),
        path("token", token),
        path("whoami", whoami),
        path("count", count),
        path("login", login),
        path("logout", logout),
        path("form", form),
        path("slash/", floor),
        path("messages/add", add_message),
        path("messages/read", read_messages),
    ]


# -- the helpers -----------------------------------------------------------------------------


class Hops:
    """``run_in_executor`` calls on the running loop, and the hooks' threads."""

    def __init__(self) -> None:
        self.count = 0


@contextlib.contextmanager
def counting_hops() -> Iterator[Hops]:
    loop = asyncio.get_running_loop()
    hops = Hops()
    original = loop.run_in_executor

    def counted(executor: Any, func: Any, *args: Any) -> Any:
        hops.count += 1
        return original(executor, func, *args)

    loop.run_in_executor = counted  # type: ignore[method-assign,assignment]
    try:
        yield hops
    finally:
        del loop.run_in_executor


@contextlib.asynccontextmanager
async def serve(
    handler_class: type[ASGIHandler] = InlineMiddlewareASGIHandler, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh handler built under ``overrides`` (they stay on meanwhile)."""
    overrides.setdefault("MIDDLEWARE", FULL_STACK)
    with override_settings(ROOT_URLCONF=urls, **overrides):
        transport = httpx.ASGITransport(app=handler_class())  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


async def csrf(client: httpx.AsyncClient) -> str:
    response = await client.get("/token")
    assert response.status_code == 200
    return str(response.json()["token"])


def set_cookies(response: httpx.Response) -> dict[str, dict[str, Any]]:
    """Set-Cookie headers by cookie name: value and attributes."""
    out: dict[str, dict[str, Any]] = {}
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            out[name] = {"value": morsel.value, **{k: v for k, v in morsel.items() if v}}
    return out


@pytest.fixture
def alice(transactional_db: Any) -> Any:
    return get_user_model().objects.create_user("alice", password="pw")


# -- the handler and its decisions ---------------------------------------------------------


def test_get_asgi_application_is_the_inline_handler_and_the_test_project_uses_it() -> None:
    from tests.asgi import application

    assert isinstance(application, InlineMiddlewareASGIHandler)
    assert isinstance(get_asgi_application(), InlineMiddlewareASGIHandler)


def test_only_known_classes_used_unchanged_get_a_policy() -> None:
    class Plain(SessionMiddleware):
        """Adds nothing Django's class defines: still known."""

        extra = 1

    class OwnResponse(SessionMiddleware):
        def process_response(self, request: Any, response: Any) -> Any:
            return super().process_response(request, response)

    class OwnAcall(SessionMiddleware):
        async def __acall__(self, request: Any) -> Any:
            return await super().__acall__(request)

    class OwnHelper(CsrfViewMiddleware):
        def _check_token(self, request: Any) -> None:
            return None

    def get_response(request: Any) -> Any:
        return HttpResponse()

    assert inline_policy_for(SessionMiddleware(get_response)) is not None
    assert inline_policy_for(Plain(get_response)) is not None
    assert inline_policy_for(OwnResponse(get_response)) is None
    assert inline_policy_for(OwnAcall(get_response)) is None
    assert inline_policy_for(OwnHelper(get_response)) is None
    assert inline_policy_for(object()) is None


async def test_known_middleware_cost_no_hop_on_a_plain_request() -> None:
    """The full Django stack costs the hops of no middleware at all (Django's own two:
    request_started and response.close), where Django's handler pays one per hook."""
    measured = {}
    for label, handler_class, middleware in [
        ("django", ASGIHandler, FULL_STACK),
        ("inline", InlineMiddlewareASGIHandler, FULL_STACK),
        ("none", ASGIHandler, []),
    ]:
        async with serve(handler_class, MIDDLEWARE=middleware) as client:
            await client.get("/floor")  # warm up
            with counting_hops() as hops:
                for _ in range(3):
                    assert (await client.get("/floor")).status_code == 200
            measured[label] = hops.count / 3
    assert measured["inline"] == measured["none"] <= 2
    # Session 2, Common 2, CSRF 3 (with process_view), Auth 1, Messages 2, Security 2,
    # XFrameOptions 1.
    assert measured["django"] - measured["inline"] == 13


async def test_api_requests_skip_every_middleware_hop(alice: Any) -> None:
    """An API GET and an API POST refused by the API's CSRF check: the same answers, and
    the hops of the view alone (Django's handler adds one per middleware hook)."""
    hops_by_handler = {}
    for handler_class in (ASGIHandler, InlineMiddlewareASGIHandler):
        async with serve(handler_class) as client:
            await client.get("/api/agents")  # warm up
            client.cookies.clear()
            with counting_hops() as get_hops:
                listed = await client.get("/api/agents")
            assert listed.status_code == 200
            assert "csrftoken" in set_cookies(listed)
            with counting_hops() as post_hops:
                refused = await client.post("/api/conversations", json={"agent": "x"})
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "csrf_failed"
        hops_by_handler[handler_class] = (get_hops.count, post_hops.count)
    django_get, django_post = hops_by_handler[ASGIHandler]
    inline_get, inline_post = hops_by_handler[InlineMiddlewareASGIHandler]
    assert django_get - inline_get == 13  # one per hook of FULL_STACK
    assert django_post - inline_post == 13


# -- sessions, login, CSRF: the same semantics -------------------------------------------------


@pytest.mark.parametrize("handler_class", [InlineMiddlewareASGIHandler, ASGIHandler])
async def test_a_session_is_issued_saved_and_reused(handler_class: Any) -> None:
    from django.contrib.sessions.models import Session

    async with serve(handler_class) as client:
        plain = await client.get("/floor")
        assert "sessionid" not in set_cookies(plain)
        assert "Vary" not in plain.headers  # the session was never touched

        first = await client.get("/count")  # no cookie yet: a new session, saved
        issued = set_cookies(first)["sessionid"]
        assert first.json()["count"] == 1 and issued["httponly"] and issued["path"] == "/"
        assert "Cookie" in first.headers["Vary"]
        assert await Session.objects.filter(session_key=issued["value"]).aexists()

        second = await client.get("/count")  # the cookie comes back: the same session
        assert second.json() == {"count": 2, "key": issued["value"]}
        assert set_cookies(second)["sessionid"]["value"] == issued["value"]
        stored = await Session.objects.aget(session_key=issued["value"])
        assert stored.get_decoded()["count"] == 2

        read_only = await client.get("/whoami")  # accessed, not modified: Vary, no cookie
        assert read_only.json() == {"user": None}
        assert "Cookie" in read_only.headers["Vary"]
        assert "sessionid" not in set_cookies(read_only)


@pytest.mark.parametrize("handler_class", [InlineMiddlewareASGIHandler, ASGIHandler])
async def test_login_and_logout_through_the_session(handler_class: Any, alice: Any) -> None:
    async with serve(handler_class) as client:
        anonymous_session = set_cookies(await client.get("/count"))["sessionid"]["value"]
        old_token = await csrf(client)
        logged_in = await client.post(
            "/login", json={"username": "alice"}, headers={"X-CSRFToken": old_token}
        )
        assert logged_in.status_code == 200, logged_in.text
        cookies = set_cookies(logged_in)
        assert cookies["sessionid"]["value"] != anonymous_session  # cycled at login
        assert "csrftoken" in cookies  # login rotates the CSRF secret
        assert (await client.get("/whoami")).json() == {"user": "alice"}
        # login rotated the CSRF secret: the old token is refused, the new one accepted
        assert (
            await client.post("/form", data={"a": "1"}, headers={"X-CSRFToken": old_token})
        ).status_code == 403
        new_token = await csrf(client)
        assert (
            await client.post("/logout", json={}, headers={"X-CSRFToken": new_token})
        ).status_code == 200
        assert (await client.get("/whoami")).json() == {"user": None}


@pytest.mark.parametrize("use_sessions", [False, True])
@pytest.mark.parametrize("handler_class", [InlineMiddlewareASGIHandler, ASGIHandler])
async def test_csrf_is_enforced_as_by_django(handler_class: Any, use_sessions: bool) -> None:
    async with serve(handler_class, CSRF_USE_SESSIONS=use_sessions) as client:
        refused = await client.post("/form", json={"a": 1})  # no cookie, no token
        assert refused.status_code == 403
        assert "CSRF" in refused.text  # Django's failure view
        value = await csrf(client)
        if use_sessions:
            assert "csrftoken" not in client.cookies and "sessionid" in client.cookies
        else:
            assert "csrftoken" in client.cookies
        no_header = await client.post("/form", json={"a": 1})
        assert no_header.status_code == 403
        wrong = await client.post("/form", json={}, headers={"X-CSRFToken": "x" * 32})
        assert wrong.status_code == 403
        ok = await client.post("/form", json={}, headers={"X-CSRFToken": value})
        assert ok.status_code == 200 and ok.json() == {"posted": None}
        # a form body carries the token itself (the check parses it, in a thread)
        posted = await client.post("/form", data={"csrfmiddlewaretoken": value, "a": "1"})
        assert posted.status_code == 200
        assert posted.json()["posted"] == {"csrfmiddlewaretoken": value, "a": "1"}
        bad_origin = await client.post(
            "/form", json={}, headers={"X-CSRFToken": value, "Origin": "https://evil.example"}
        )
        assert bad_origin.status_code == 403
        # the API's own check answers in JSON
        api = await client.post("/api/conversations", json={"agent": "x"})
        assert api.status_code == 403 and api.json()["error"]["code"] == "csrf_failed"


FAILURE_THREADS: list[int] = []


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A project's CSRF_FAILURE_VIEW (it may do anything, so it runs in a thread)."""
    FAILURE_THREADS.append(threading.get_ident())
    return HttpResponse(f"refused: {reason}", status=403)


async def test_a_csrf_refusal_runs_the_failure_view_in_a_thread() -> None:
    FAILURE_THREADS.clear()
    async with serve(CSRF_FAILURE_VIEW=f"{__name__}.csrf_failure") as client:
        response = await client.post("/form", json={})
        accepted = await client.post("/form", json={}, headers={"X-CSRFToken": await csrf(client)})
    assert response.status_code == 403 and response.text.startswith("refused: CSRF cookie")
    assert accepted.status_code == 200
    assert len(FAILURE_THREADS) == 1 and FAILURE_THREADS[0] != threading.get_ident()


@pytest.mark.parametrize("handler_class", [InlineMiddlewareASGIHandler, ASGIHandler])
async def test_messages_round_trip(handler_class: Any) -> None:
    for storage in (
        "django.contrib.messages.storage.fallback.FallbackStorage",
        "django.contrib.messages.storage.session.SessionStorage",
    ):
        async with serve(handler_class, MESSAGE_STORAGE=storage) as client:
            await client.get("/count")  # a session for the session storage
            assert (await client.get("/messages/add")).status_code == 200
            assert (await client.get("/messages/read")).json() == {"messages": ["saved"]}
            assert (await client.get("/messages/read")).json() == {"messages": []}


@pytest.mark.parametrize(
    "path, method",
    [
        ("/floor", "GET"),
        ("/count", "GET"),
        ("/token", "GET"),
        ("/missing", "GET"),
        ("/floor/", "GET"),
        ("/slash", "GET"),
        ("/form", "POST"),
    ],
)
async def test_same_headers_as_django(path: str, method: str) -> None:
    """Status, header names, Vary and cookie attributes match Django's handler."""
    answers = []
    for handler_class in (ASGIHandler, InlineMiddlewareASGIHandler):
        async with serve(handler_class, APPEND_SLASH=True) as client:
            response = await client.request(method, path)
            cookies = {
                name: {k: v for k, v in attrs.items() if k not in ("value", "expires")}
                for name, attrs in set_cookies(response).items()
            }
            answers.append(
                (
                    response.status_code,
                    sorted(
                        k for k in response.headers if k not in ("set-cookie", "content-length")
                    ),
                    response.headers.get("vary"),
                    response.headers.get("x-frame-options"),
                    cookies,
                )
            )
    assert answers[0] == answers[1]


# -- other middleware keep Django's path; a wrong rule is loud -------------------------------


class DatabaseMiddleware(MiddlewareMixin):
    """Not on the list: queries the database in both hooks, as Django allows."""

    threads: list[int] = []

    def process_request(self, request: HttpRequest) -> None:
        self.threads.append(threading.get_ident())
        request.users = get_user_model().objects.count()  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        self.threads.append(threading.get_ident())
        response["X-Users"] = str(get_user_model().objects.count())
        return response


async def test_an_unknown_middleware_keeps_its_thread(alice: Any) -> None:
    DatabaseMiddleware.threads = []
    stack = [*FULL_STACK, f"{__name__}.DatabaseMiddleware"]
    async with serve(MIDDLEWARE=stack) as client:
        response = await client.get("/floor")
    assert response.status_code == 200 and response.headers["X-Users"] == "1"
    assert len(DatabaseMiddleware.threads) == 2
    assert threading.get_ident() not in DatabaseMiddleware.threads


async def test_a_session_save_misjudged_as_inline_is_refused_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If a rule let a database write onto the loop, Django refuses it (500), never runs it."""
    errors: list[BaseException] = []

    def record(sender: Any, request: Any = None, **kwargs: Any) -> None:
        import sys

        errors.append(sys.exc_info()[1])  # type: ignore[arg-type]

    monkeypatch.setattr(inline_asgi._SessionPolicy, "response_inline", lambda *a: True)
    got_request_exception.connect(record)
    try:
        async with serve() as client:
            response = await client.get("/count")
    finally:
        got_request_exception.disconnect(record)
    assert response.status_code == 500
    assert any(isinstance(e, SynchronousOnlyOperation) for e in errors), errors


async def test_the_session_save_hops_and_a_read_does_not() -> None:
    async with serve() as client:
        await client.get("/count")
        with counting_hops() as hops:
            await client.get("/count")  # load (aget: one hop) + save (process_response)
        saving = hops.count
        with counting_hops() as hops:
            await client.get("/whoami")  # load only
        reading = hops.count
    assert saving == reading + 1


def sync_only(get_response: Any) -> Any:
    """A function middleware that only runs synchronously: Django adapts around it."""

    def middleware(request: HttpRequest) -> Any:
        response = get_response(request)
        response["X-Sync-Only"] = "1"
        return response

    return middleware


class NotUsed(MiddlewareMixin):
    def __init__(self, get_response: Any) -> None:
        from django.core.exceptions import MiddlewareNotUsed

        raise MiddlewareNotUsed


@pytest.mark.parametrize("where", ["top", "bottom"])
async def test_mixed_stacks_keep_working(where: str) -> None:
    """A sync-only middleware above (the known ones stay async, called from a thread) or
    below (the known ones run in sync mode, Django's way), and a MiddlewareNotUsed."""
    extra = f"{__name__}.sync_only"
    stack = [*FULL_STACK[:3], f"{__name__}.NotUsed", *FULL_STACK[3:]]
    stack = [extra, *stack] if where == "top" else [*stack, extra]
    async with serve(MIDDLEWARE=stack) as client:
        first = await client.get("/count")
        second = await client.get("/count")
        assert first.headers["X-Sync-Only"] == "1"
        issued = set_cookies(first)["sessionid"]["value"]
        assert second.json() == {"count": 2, "key": issued}
        assert (await client.post("/form", json={})).status_code == 403
        value = await csrf(client)
        ok = await client.post("/form", json={}, headers={"X-CSRFToken": value})
        assert ok.status_code == 200


@pytest.mark.parametrize("handler_class", [InlineMiddlewareASGIHandler, ASGIHandler])
async def test_save_every_request_refreshes_the_session(handler_class: Any) -> None:
    async with serve(handler_class, SESSION_SAVE_EVERY_REQUEST=True) as client:
        assert "sessionid" not in set_cookies(await client.get("/floor"))  # empty: no save
        issued = set_cookies(await client.get("/count"))["sessionid"]["value"]
        with counting_hops() as hops:
            refreshed = await client.get("/floor")  # untouched, saved anyway
        assert set_cookies(refreshed)["sessionid"]["value"] == issued
        assert "Cookie" in refreshed.headers["Vary"]
        assert hops.count >= 3  # request_started, the save, response.close
