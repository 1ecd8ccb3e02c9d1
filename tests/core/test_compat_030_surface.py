"""The 0.3.0 names and call shapes of router, tools and prompts, beside our own API."""

from __future__ import annotations

from enum import Enum

import pytest

from agent_runtime_framework import router as router_pkg
from agent_runtime_framework import tools as tools_pkg
from agent_runtime_framework.prompts import PromptTemplate, StepPromptMapping
from agent_runtime_framework.router import (
    IntentDetector,
    IntentRouter,
    RouteDefinition,
    RouteResult,
    create_reroute_tool,
)
from agent_runtime_framework.tools import (
    BaseJourneyTools,
    ToolParameter,
    ToolResult,
    ToolSchema,
    ToolSchemaBuilder,
    schemas_to_openai_format,
)


class Desk(str, Enum):
    QUOTE = "quote"
    CLAIM = "claim"
    HELP = "help"


# -- router --------------------------------------------------------------------------------


def test_a_detector_built_without_a_mapping_answers_with_route_results():
    detector = (
        IntentDetector[Desk](default_journey=Desk.HELP)
        .add_keywords(Desk.QUOTE, ["quote", "price"])
        .add_keywords(Desk.CLAIM, ["claim", "damage", "flood", "theft"])
    )
    hit = detector.detect("Flood damage: I want to claim")
    assert isinstance(hit, RouteResult)
    assert hit.journey is Desk.CLAIM and hit.confidence == pytest.approx(0.75)
    fallback = detector.detect("good morning")
    assert isinstance(fallback, RouteResult)
    assert (fallback.journey, fallback.confidence) == (Desk.HELP, 0.5)
    assert IntentDetector[Desk]().add_keywords(Desk.QUOTE, ["quote"]).detect("hello") is None
    # 0.3.0's only positional parameter was the default journey.
    positional = IntentDetector(Desk.HELP).detect("anything")
    assert isinstance(positional, RouteResult) and positional.journey is Desk.HELP


def test_a_mapping_built_detector_still_answers_with_the_journey_and_both_forms_exist():
    detector = IntentDetector({Desk.QUOTE: ["quote", "price"]}, default=Desk.HELP)
    detector.add_keywords(Desk.CLAIM, ["claim"])
    assert detector.detect("a claim please") is Desk.CLAIM
    assert detector.detect("hi") is Desk.HELP
    assert detector.detect_journey("price of a quote") is Desk.QUOTE
    route = detector.detect_route("price of a quote")
    assert route == RouteResult(Desk.QUOTE, confidence=1.0)
    legacy = IntentDetector[Desk]().add_keywords(Desk.QUOTE, ["quote"])
    assert legacy.detect_journey("quote") is Desk.QUOTE
    with pytest.raises(TypeError, match="both default and default_journey"):
        IntentDetector({}, default=Desk.HELP, default_journey=Desk.QUOTE)


def test_a_route_result_compares_and_hashes_like_its_journey():
    result = RouteResult(Desk.CLAIM, confidence=0.4)
    assert result == Desk.CLAIM and result != Desk.QUOTE
    assert {Desk.CLAIM: "claims desk"}[result] == "claims desk"
    assert result != RouteResult(Desk.CLAIM, confidence=0.9)
    assert result == RouteResult(Desk.CLAIM, confidence=0.4)


def test_router_030_surface():
    router = IntentRouter[Desk]().add_routes(
        [
            RouteDefinition(Desk.QUOTE, "route_to_quote", "Get a quote"),
            RouteDefinition(Desk.CLAIM, "route_to_claim", "File a claim"),
        ]
    )
    assert router.route_names == ["route_to_quote", "route_to_claim"]
    assert router.journeys == [Desk.QUOTE, Desk.CLAIM]
    assert router.is_routing_tool("route_to_claim") is True
    assert router.is_routing_tool("collect_name") is False
    openai = router.get_tool_schemas_openai()
    assert [t["function"]["name"] for t in openai] == router.route_names
    assert openai[0]["function"]["description"] == "Get a quote"
    assert router.detect_fallback("a quote") is None  # no fallback detector


def test_router_fallback_detector_answers_with_a_route_result_in_either_form():
    legacy = IntentDetector[Desk](default_journey=Desk.HELP).add_keywords(Desk.QUOTE, ["quote"])
    by_keyword = IntentRouter[Desk](fallback_detector=legacy)
    result = by_keyword.detect_fallback("a quote please")
    assert isinstance(result, RouteResult) and result.journey is Desk.QUOTE
    assert IntentRouter[Desk](legacy).fallback_detector is legacy
    mapped = IntentRouter(fallback_detector=IntentDetector({Desk.CLAIM: ["claim"]}))
    claim = mapped.detect_fallback("my claim")
    assert isinstance(claim, RouteResult) and claim.journey is Desk.CLAIM
    assert mapped.detect_fallback("nothing") is None


def test_reroute_tool_and_exports():
    schema = create_reroute_tool()
    assert schema.name == "reroute_conversation" and schema.parameters == []
    assert "DIFFERENT" in schema.description
    assert {"RouteResult", "create_reroute_tool"} <= set(router_pkg.__all__)
    assert {"schemas_to_openai_format", "StateChangeCallback"} <= set(tools_pkg.__all__)


# -- tools ---------------------------------------------------------------------------------


def test_tool_result_ok_and_fail_collect_metadata():
    ok = ToolResult.ok("Saved.", rows=2)
    assert (ok.content, ok.success, ok.error, ok.metadata) == ("Saved.", True, None, {"rows": 2})
    failed = ToolResult.fail("Backend down", code=503)
    assert (failed.content, failed.success, failed.error) == ("Backend down", False, "Backend down")
    assert failed.metadata == {"code": 503} and failed.data is None
    assert ToolResult.fail(error="Nope").content == "Nope"
    # Our own call shape is unchanged: data is the structured-data field.
    ours = ToolResult.fail("Age must be 18-120", {"age": 7})
    assert ours.data == {"age": 7} and ours.metadata == {}
    with pytest.raises(TypeError):
        ToolResult.fail()


def test_tool_parameter_to_schema_sets_only_the_keys_given():
    assert ToolParameter("q", "string", "Query").to_schema() == {
        "type": "string",
        "description": "Query",
    }
    assert ToolParameter("n", "integer", default=5).to_schema() == {"type": "integer", "default": 5}
    tags = ToolParameter("tags", "array", items={"type": "string"}, enum=["a", "b"])
    assert tags.to_schema() == {"type": "array", "enum": ["a", "b"], "items": {"type": "string"}}
    # What the model is sent keeps its own rules (items always present for arrays).
    assert ToolParameter("xs", "array").to_json_schema() == {"type": "array", "items": {}}
    assert ToolParameter("xs", "array").to_schema() == {"type": "array"}


def test_builder_to_openai_format_and_schemas_to_openai_format():
    builder = ToolSchemaBuilder("lookup").description("Look up").param("id", "string", "Id")
    assert builder.to_openai_format() == builder.build().to_openai_format()
    assert builder.to_openai_format()["function"]["parameters"]["required"] == ["id"]
    other = ToolSchema(name="other", description="Other")
    assert schemas_to_openai_format([builder.build(), other]) == [
        builder.build().to_openai_format(),
        other.to_openai_format(),
    ]
    assert schemas_to_openai_format(()) == []


def test_require_backend():
    class Tools(BaseJourneyTools[dict]):
        pass

    with pytest.raises(ValueError, match="Tools requires a backend_client"):
        Tools({})._require_backend()
    client = object()
    assert Tools({}, backend_client=client)._require_backend() is client


# -- prompts -------------------------------------------------------------------------------


def test_safe_render_leaves_missing_placeholders_while_render_names_them():
    template = PromptTemplate("Dear $name, ticket ${ticket} is $state", {"state": "open"})
    assert template.safe_render(name="Ann") == "Dear Ann, ticket ${ticket} is open"
    assert template.safe_render(name=Desk.CLAIM, ticket=4) == "Dear claim, ticket 4 is open"
    with pytest.raises(KeyError, match="ticket"):
        template.render(name="Ann")


def test_a_dollar_that_starts_no_placeholder_stays_as_written():
    template = PromptTemplate("Cover costs $5 a month, $name$")
    assert template.render(name="Ann") == "Cover costs $5 a month, Ann$"
    assert template.safe_render() == "Cover costs $5 a month, $name$"
    prompts = StepPromptMapping({Desk.QUOTE: "Plans start at $9.99."})
    assert prompts.get(Desk.QUOTE) == "Plans start at $9.99."


def test_prompt_template_text_is_a_string_as_in_030():
    template = PromptTemplate("Hi $name", {"name": "there"})
    assert template.template == "Hi $name" and str(template) == "Hi $name"
    assert repr(template) == "PromptTemplate(template='Hi $name', defaults={'name': 'there'})"
