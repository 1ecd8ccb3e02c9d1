"""The ``NinjaAPI``: every operation, its schemas, errors and the OpenAPI document.

``urls.py`` includes ``url_patterns()``; ``openapi.json`` is ninja's document of these
same declarations (paths relative to the prefix the project includes the URLs under,
which the document's ``servers`` entry names).
"""

import json
from functools import lru_cache
from typing import Any

from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import NoReverseMatch, URLPattern, reverse
from ninja import NinjaAPI, Router
from ninja.parser import Parser
from ninja.responses import NinjaJSONEncoder

from ... import __version__
from . import agui
from .access import caller_first, gate, read_json
from .conversations import router as conversations
from .errors import ERROR_MODELS, error_response, errors, install_handlers
from .events import router as events
from .people import router as people
from .schemas import AgentKey

__all__ = ["api", "openapi_document", "url_patterns"]

_DESCRIPTION = (
    "Journey-based conversational agents. Session authentication; POSTs need the "
    "X-CSRFToken header (value of the csrftoken cookie). Errors are "
    '{"error": {"code", "message", "details"}}; a method an operation does not '
    "list answers 405 (method_not_allowed, with an Allow header). A client's "
    "mistake never gets a 5xx."
)


class _JsonParser(Parser):
    """The body as the JSON object ``gate`` read and parsed (the API's 4xx otherwise)."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return read_json(request)


api = NinjaAPI(
    title="agent-runtime-framework HTTP API",
    version=str(__version__),
    description=_DESCRIPTION,
    urls_namespace="agent_runtime",
    openapi_url=None,
    docs_url=None,
    parser=_JsonParser(),
)
install_handlers(api)
api.add_decorator(gate, mode="view")

_other = Router()


@_other.post(
    "/ag-ui/{agent_key}",
    url_name="ag-ui",
    operation_id="runAgUi",
    summary="Run a turn for an AG-UI front end; answers with AG-UI events (SSE)",
    description=(
        "Events: RUN_STARTED, STATE_SNAPSHOT, STEP_STARTED/STEP_FINISHED, "
        "TEXT_MESSAGE_START/CONTENT/END, TOOL_CALL_START/ARGS/END/RESULT, "
        "STATE_DELTA, CUSTOM, then RUN_FINISHED, or RUN_ERROR whose code is one "
        "of this API's error codes (e.g. conversation_busy, llm_error). 404: no agent with "
        "this key, or the thread is a conversation the caller does not own (or one with "
        "another agent)."
    ),
    response={200: None, **errors(400, 403, 404, 413, 415, 422)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/RunAgentInput"}}
            },
        },
        "responses": {
            200: {
                "description": "The run's AG-UI events",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        },
    },
)
@caller_first()
async def run_ag_ui(request: HttpRequest, agent_key: AgentKey) -> Any:
    """Run one AG-UI ``RunAgentInput`` on the agent's journey (agui.py); the body is
    AG-UI's own model, validated by ``ag_ui`` after the caller and the agent are known."""
    return await agui.agui_view(request, agent_key)


@_other.get(
    "/openapi.json",
    url_name="openapi",
    operation_id="getOpenApi",
    summary="This document",
    response={200: dict[str, Any]},
)
async def get_openapi(request: HttpRequest) -> Any:
    """The OpenAPI document of this API, generated from its declarations."""
    return JsonResponse(openapi_document(request))


api.add_router("", conversations)
api.add_router("", people)
api.add_router("", events)
api.add_router("", _other)


def _server_url(request: HttpRequest | None) -> str:
    try:
        agents = reverse("agent_runtime:agents")
    except NoReverseMatch:
        return "/"
    prefix = agents[: -len("agents")].rstrip("/") or "/"
    if request is not None:
        return request.build_absolute_uri(prefix)
    return prefix


def openapi_document(request: HttpRequest | None = None) -> dict[str, Any]:
    """The OpenAPI document (limits and agent keys as configured now)."""
    document = dict(api.get_openapi_schema(path_prefix=""))
    document["servers"] = [{"url": _server_url(request)}]
    document["security"] = [{"sessionCookie": []}]
    components = dict(document.get("components", {}))
    schemas = {**components.get("schemas", {}), **agui.run_agent_input_schema()}
    for model in ERROR_MODELS.values():  # also the 405 answer of any unlisted method
        if model.__name__ not in schemas:
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(found.pop("$defs", {}))
            schemas[model.__name__] = found
    components["schemas"] = schemas
    document["components"] = {
        **components,
        "securitySchemes": {
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
            "csrfHeader": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"},
        },
    }
    # As served: JSON (ninja's status keys are integers until then).
    result: dict[str, Any] = json.loads(json.dumps(document, cls=NinjaJSONEncoder))
    return result


_METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _json_405(view: Any) -> Any:
    """A ninja path view answering an unlisted method with the API's JSON 405."""

    async def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = await view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            listed = {m.strip() for m in response["Allow"].split(",")}
            allowed = [m for m in _METHOD_ORDER if m in listed]
            return error_response(
                405,
                "method_not_allowed",
                f"Method {request.method} is not allowed here",
                {"allowed": allowed},
                {"Allow": ", ".join(allowed)},
            )
        return response

    answer.csrf_exempt = True  # type: ignore[attr-defined]  # checked by gate
    return answer


@lru_cache(maxsize=1)
def url_patterns() -> tuple[URLPattern, ...]:
    """The API's URL patterns: one per path (ninja's api root and duplicates left out)."""
    seen: set[str] = set()
    patterns: list[URLPattern] = []
    for pattern in api.urls[0]:
        route = str(pattern.pattern)
        if not isinstance(pattern, URLPattern) or not route or route in seen:
            continue
        seen.add(route)
        patterns.append(URLPattern(pattern.pattern, _json_405(pattern.callback), name=pattern.name))
    return tuple(patterns)
