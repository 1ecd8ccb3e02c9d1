"""An ASGI handler that runs Django's non-blocking middleware hooks on the event loop.

Under ASGI, Django calls every hook of an old-style (``MiddlewareMixin``) middleware through
``sync_to_async(thread_sensitive=True)``: a thread hop for each ``process_request``,
``process_view`` and ``process_response``, whether or not the hook can block. With the
usual stack (sessions, CSRF, authentication, ...) that is most of the server's CPU for a
small API request. :func:`get_asgi_application` is a drop-in for
``django.core.asgi.get_asgi_application``::

    # mysite/asgi.py
    from agent_runtime_framework.django.asgi import get_asgi_application

    application = get_asgi_application()

The middleware chain is built by Django from ``settings.MIDDLEWARE`` exactly as usual (same
classes, same order, same instances, ``MiddlewareNotUsed``, sync/async adaptation). Only
the middleware classes below, used unchanged (a subclass that redefines anything the class
or ``MiddlewareMixin`` defines keeps Django's behaviour), have their hooks called on the
event loop, and only when the hook does no blocking work:

- ``SecurityMiddleware``, ``XFrameOptionsMiddleware``, ``CommonMiddleware`` and Django 6's
  ``ContentSecurityPolicyMiddleware``: header and redirect work only, always inline.
- ``AuthenticationMiddleware.process_request``: sets a lazy ``request.user`` and
  ``request.auser``; the user is loaded where it is first used, as with Django.
- ``SessionMiddleware``: ``process_request`` builds a lazy store (inline for the db,
  cached_db, cache and signed_cookies engines); ``process_response`` hops to a thread when
  it is going to save the session (a non-empty session, modified or with
  ``SESSION_SAVE_EVERY_REQUEST``), and otherwise only sets ``Vary``/deletes the cookie,
  inline.
- ``CsrfViewMiddleware`` (cookie-based): ``process_request`` and ``process_response``
  inline; ``process_view`` inline when it accepts the request, except for a form body that
  is not parsed yet (reading it may touch the disk); a request it rejects is handed to the
  real hook in a thread, which renders ``CSRF_FAILURE_VIEW`` and logs exactly as Django
  does. With ``CSRF_USE_SESSIONS`` every hook that may read the session hops.
- ``MessageMiddleware`` with Django's storages: ``process_request`` inline (a lazy
  storage); ``process_response`` hops when messages were read or added (storing them may
  load or write the session), else inline.

Everything else (other middleware, ``process_exception``, ``process_template_response``,
Django's signals and ``response.close()``) is left to Django. An inline hook runs on the
event-loop thread, so a database query that slipped into one would raise
``SynchronousOnlyOperation`` rather than run on the wrong connection: a mistake in these
rules is loud, not silent.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import django
from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string

__all__ = ["InlineMiddlewareASGIHandler", "get_asgi_application", "inline_policy_for"]

_HOOKS = (
    "process_request",
    "process_view",
    "process_response",
    "process_template_response",
    "process_exception",
)
# Names every class has its own copy of: not behaviour.
_PER_CLASS = frozenset(
    {
        "__module__",
        "__qualname__",
        "__doc__",
        "__dict__",
        "__weakref__",
        "__firstlineno__",
        "__static_attributes__",
        "__annotations__",
        "__orig_bases__",
    }
)
_MISSING = object()


def _hop(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    return sync_to_async(fn, thread_sensitive=True)


def _behaves_as(cls: type, known: type) -> bool:
    """``cls`` is ``known`` or a subclass that redefines none of its (or its bases') names."""
    if cls is known:
        return True
    if not issubclass(cls, known):
        return False
    names = set(_HOOKS)
    for base in known.__mro__:
        if base is not object:
            names.update(n for n in vars(base) if n not in _PER_CLASS)
    return all(
        inspect.getattr_static(cls, n, _MISSING) is inspect.getattr_static(known, n, _MISSING)
        for n in names
    )


class InlinePolicy:
    """When each hook of one known middleware class may run on the event loop.

    ``request_inline`` / ``response_inline`` answer per request; ``view`` (when the class
    has ``process_view``) is the async replacement of the adapted ``process_view``.
    """

    known: type

    def request_inline(self, mw: Any, request: HttpRequest) -> bool:
        return True

    def response_inline(self, mw: Any, request: HttpRequest, response: Any) -> bool:
        return True

    def view(self, mw: Any) -> Callable[..., Awaitable[Any]] | None:
        return None


class _Always(InlinePolicy):
    def __init__(self, known: type) -> None:
        self.known = known


class _SessionPolicy(InlinePolicy):
    def __init__(self) -> None:
        from django.contrib.sessions.middleware import SessionMiddleware

        self.known = SessionMiddleware
        self._stores: tuple[type, ...] | None = None

    def stores(self) -> tuple[type, ...]:
        """Session stores whose constructor and flags do no I/O (their load/save do)."""
        if self._stores is None:
            from django.contrib.sessions.backends import cache, cached_db, db, signed_cookies

            self._stores = (
                db.SessionStore,
                cached_db.SessionStore,
                cache.SessionStore,
                signed_cookies.SessionStore,
            )
        return self._stores

    def request_inline(self, mw: Any, request: HttpRequest) -> bool:
        return getattr(mw, "SessionStore", None) in self.stores()

    def response_inline(self, mw: Any, request: HttpRequest, response: Any) -> bool:
        session = getattr(request, "session", None)
        if session is None:
            return True  # Django returns the response untouched
        if type(session) not in self.stores():
            return False
        # Django's process_response touches the store only to save it: a non-empty
        # session that was modified, or any non-empty one with SESSION_SAVE_EVERY_REQUEST.
        # Otherwise it reads these flags, maybe deletes the cookie and patches Vary.
        will_save = (session.modified or settings.SESSION_SAVE_EVERY_REQUEST) and not (
            session.is_empty()
        )
        return not will_save


class _Rejected:
    """Marks a rejection found by the inline probe of ``process_view``."""


_REJECTED = _Rejected()
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class _CsrfPolicy(InlinePolicy):
    def __init__(self) -> None:
        from django.middleware.csrf import CsrfViewMiddleware

        self.known = CsrfViewMiddleware

        class Probe(CsrfViewMiddleware):
            """Django's ``process_view`` with the failure view (a template, a log line,
            anything a project configures) replaced by a marker."""

            def _reject(self, request: HttpRequest, reason: str) -> Any:
                return _REJECTED

        self._probe_class = Probe

    def request_inline(self, mw: Any, request: HttpRequest) -> bool:
        return not settings.CSRF_USE_SESSIONS  # else it reads the session

    def response_inline(self, mw: Any, request: HttpRequest, response: Any) -> bool:
        # Setting the cookie is header work; with sessions it reads and writes the session.
        return not (settings.CSRF_USE_SESSIONS and request.META.get("CSRF_COOKIE_NEEDS_UPDATE"))

    def view(self, mw: Any) -> Callable[..., Awaitable[Any]]:
        probe = self._probe_class(mw.get_response)
        hopped = _hop(mw.process_view)

        async def process_view(
            request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any
        ) -> Any:
            if settings.CSRF_USE_SESSIONS or _unparsed_form(request, callback):
                return await hopped(request, callback, callback_args, callback_kwargs)
            outcome = probe.process_view(request, callback, callback_args, callback_kwargs)
            if outcome is _REJECTED:
                # The real hook, in a thread: the failure view and its log line as usual.
                return await hopped(request, callback, callback_args, callback_kwargs)
            return outcome

        return process_view


def _unparsed_form(request: HttpRequest, callback: Any) -> bool:
    """The CSRF check would parse a form body (spooled to disk when large) first."""
    if request.method != "POST" or hasattr(request, "_post"):
        return False
    if getattr(callback, "csrf_exempt", False) or getattr(request, "csrf_processing_done", False):
        return False
    return getattr(request, "content_type", None) in _FORM_TYPES


class _MessagePolicy(InlinePolicy):
    def __init__(self) -> None:
        from django.contrib.messages.middleware import MessageMiddleware
        from django.contrib.messages.storage.cookie import CookieStorage
        from django.contrib.messages.storage.fallback import FallbackStorage
        from django.contrib.messages.storage.session import SessionStorage

        self.known = MessageMiddleware
        self.storages = (FallbackStorage, CookieStorage, SessionStorage)
        self._storage_known: dict[str, bool] = {}

    def request_inline(self, mw: Any, request: HttpRequest) -> bool:
        # The storage Django's process_request builds (a setting, so looked up each time).
        path = settings.MESSAGE_STORAGE
        known = self._storage_known.get(path)
        if known is None:
            known = self._storage_known[path] = import_string(path) in self.storages
        return known

    def response_inline(self, mw: Any, request: HttpRequest, response: Any) -> bool:
        storage = getattr(request, "_messages", None)
        if storage is None:
            return True
        if type(storage) not in self.storages:
            return False
        # update() stores only messages that were read or added (maybe via the session).
        return not (storage.used or storage.added_new)


def _default_policies() -> list[InlinePolicy]:
    from django.contrib.auth.middleware import AuthenticationMiddleware
    from django.middleware.clickjacking import XFrameOptionsMiddleware
    from django.middleware.common import CommonMiddleware
    from django.middleware.security import SecurityMiddleware

    policies: list[InlinePolicy] = [
        _Always(SecurityMiddleware),
        _Always(XFrameOptionsMiddleware),
        _Always(CommonMiddleware),
        _Always(AuthenticationMiddleware),
        _SessionPolicy(),
        _CsrfPolicy(),
        _MessagePolicy(),
    ]
    try:  # Django 6.0+
        from django.middleware.csp import (  # type: ignore[import-not-found,unused-ignore]
            ContentSecurityPolicyMiddleware,
        )
    except ImportError:
        pass
    else:
        policies.append(_Always(ContentSecurityPolicyMiddleware))
    return policies


_policies: list[InlinePolicy] | None = None


def inline_policy_for(middleware: Any) -> InlinePolicy | None:
    """The policy of a middleware instance, or None: Django's behaviour for it."""
    global _policies
    if _policies is None:
        _policies = _default_policies()
    if not isinstance(middleware, MiddlewareMixin):
        return None
    for policy in _policies:
        if _behaves_as(type(middleware), policy.known):
            return policy
    return None


class _InlineHooks:
    """Stands in for ``MiddlewareMixin.__acall__`` of one known middleware instance."""

    def __init__(self, mw: Any, policy: InlinePolicy) -> None:
        self.mw = mw
        self.policy = policy
        self.get_response = mw.get_response
        self.process_request = getattr(mw, "process_request", None)
        self.process_response = getattr(mw, "process_response", None)
        self.hopped_request = _hop(self.process_request) if self.process_request else None
        self.hopped_response = _hop(self.process_response) if self.process_response else None
        markcoroutinefunction(self)

    def __repr__(self) -> str:
        return f"<inline {self.mw!r}>"

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if self.process_request is not None:
            if self.policy.request_inline(self.mw, request):
                response = self.process_request(request)
            else:
                assert self.hopped_request is not None
                response = await self.hopped_request(request)
        response = response or await self.get_response(request)
        if self.process_response is not None:
            if self.policy.response_inline(self.mw, request, response):
                response = self.process_response(request, response)
            else:
                assert self.hopped_response is not None
                response = await self.hopped_response(request, response)
        return response


class InlineMiddlewareASGIHandler(ASGIHandler):
    """``ASGIHandler`` whose known middleware hooks skip the thread hop when they may.

    Django's ``load_middleware`` builds the chain; this class only sees what it hands to
    ``adapt_method_mode``: each middleware instance (wrapped by
    ``convert_exception_to_response``) on its way into the next layer, and each
    ``process_view``. A known instance in async mode is replaced by an inline caller of
    its hooks; anything else passes through unchanged, so a Django release that builds the
    chain differently gets Django's behaviour back, not a broken chain.
    """

    def adapt_method_mode(
        self,
        is_async: bool,
        method: Any,
        method_is_async: bool | None = None,
        debug: bool = False,
        name: str | None = None,
    ) -> Any:
        method = self._inline(is_async, method, method_is_async)
        return super().adapt_method_mode(is_async, method, method_is_async, debug, name)

    def _inline(self, is_async: bool, method: Any, method_is_async: bool | None) -> Any:
        # A bound process_view, adapted to the async handler.
        if inspect.ismethod(method) and method.__name__ == "process_view":
            policy = inline_policy_for(method.__self__)
            if is_async and policy is not None:
                replacement = policy.view(method.__self__)
                if replacement is not None:
                    return replacement
            return method
        # A middleware instance as the next layer's get_response.
        mw = getattr(method, "__wrapped__", None)
        if (
            mw is None
            or not getattr(mw, "async_mode", False)
            or not (method_is_async or iscoroutinefunction(method))
        ):
            return method
        policy = inline_policy_for(mw)
        if policy is None:
            return method
        return convert_exception_to_response(_InlineHooks(mw, policy))


def get_asgi_application() -> InlineMiddlewareASGIHandler:
    """Drop-in for ``django.core.asgi.get_asgi_application()`` (same setup, same chain)."""
    django.setup(set_prefix=False)
    return InlineMiddlewareASGIHandler()
