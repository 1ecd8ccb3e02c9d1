"""OfflineStandInLLM: each rule, deterministic output, and the streaming shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent_runtime_framework.llm import LLMClient, OfflineStandInLLM, StreamingLLMClient


def tool(
    name: str, properties: dict[str, Any], required: list[str] | None = None, description: str = ""
) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties) if required is None else required,
            },
        },
    }


def conversation(text: str, system: str = "Collect the data.") -> list[dict[str, Any]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


async def single_call(text: str, tools: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    response = await OfflineStandInLLM().generate(conversation(text), tools)
    [call] = response.message["tool_calls"]
    assert response.finish_reason == "tool_calls"
    assert response.message["content"] is None
    return call["function"]["name"], json.loads(call["function"]["arguments"])


def test_identity_and_protocols():
    llm = OfflineStandInLLM()
    assert llm.is_offline_standin is True and llm.model == "offline-stand-in"
    assert isinstance(llm, LLMClient) and isinstance(llm, StreamingLLMClient)


async def test_email_by_name_description_or_format():
    by_name = tool("save_email", {"email": {"type": "string"}})
    by_format = tool("save_contact", {"contact": {"type": "string", "format": "email"}})
    by_description = tool(
        "save_contact", {"address": {"type": "string", "description": "E-mail address"}}
    )
    for candidate in (by_name, by_format, by_description):
        name, args = await single_call(
            "sure, it's Ada.Lovelace+x@example.co.uk thanks", [candidate]
        )
        assert args == {
            next(
                iter(candidate["function"]["parameters"]["properties"])
            ): "Ada.Lovelace+x@example.co.uk"
        }
        assert name == candidate["function"]["name"]


async def test_email_param_is_not_filled_with_other_text():
    response = await OfflineStandInLLM().generate(
        conversation("my name is Ada"), [tool("save_email", {"email": {"type": "string"}})]
    )
    assert "tool_calls" not in response.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("born 2024-05-01", "2024-05-01"),
        ("it was 01/05/2024", "2024-05-01"),  # day first
        ("on 05/31/2024", "2024-05-31"),  # month first when day first is impossible
        ("May 1 2024", "2024-05-01"),
        ("the 1st of May, 2024", "2024-05-01"),
        ("Sept. 3, 1999", "1999-09-03"),
    ],
)
async def test_dates(text, expected):
    _name, args = await single_call(
        text, [tool("set_start_date", {"start_date": {"type": "string"}})]
    )
    assert args == {"start_date": expected}
    _, formatted = await single_call(
        text, [tool("set_when", {"when": {"type": "string", "format": "date"}})]
    )
    assert formatted == {"when": expected}


async def test_number_and_age():
    _, args = await single_call(
        "I'm 42 years old", [tool("save_age", {"age": {"type": "integer"}})]
    )
    assert args == {"age": 42}
    _, args = await single_call(
        "about 2.5 please", [tool("set_amount", {"amount": {"type": "number"}})]
    )
    assert args == {"amount": 2.5}


async def test_numbers_inside_emails_and_dates_are_ignored():
    response = await OfflineStandInLLM().generate(
        conversation("ada1984@example.com on 2024-05-01"),
        [tool("save_age", {"age": {"type": "integer"}})],
    )
    assert "tool_calls" not in response.message


async def test_enum_option_case_insensitive():
    plan = tool(
        "choose_plan", {"plan": {"type": "string", "enum": ["basic", "premium_plus", "Pro"]}}
    )
    assert (await single_call("I'd like PRO please", [plan]))[1] == {"plan": "Pro"}
    assert (await single_call("premium plus sounds good", [plan]))[1] == {"plan": "premium_plus"}
    response = await OfflineStandInLLM().generate(conversation("the cheapest one"), [plan])
    assert "tool_calls" not in response.message


@pytest.mark.parametrize(
    ("text", "value"),
    [("yes please", True), ("Yep!", True), ("no thanks", False), ("I do not agree", False)],
)
async def test_booleans(text, value):
    _, args = await single_call(text, [tool("set_newsletter", {"subscribe": {"type": "boolean"}})])
    assert args == {"subscribe": value}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("My name is Ada Lovelace.", "Ada Lovelace"),
        ("Hi, I'm Grace Hopper!", "Grace Hopper"),
        ("it's Alan", "Alan"),
        ("call me Ishmael", "Ishmael"),
        ("Barbara Liskov", "Barbara Liskov"),
    ],
)
async def test_single_free_text_parameter_strips_filler(text, value):
    name, args = await single_call(
        text, [tool("save_name", {"name": {"type": "string", "description": "The user's name"}})]
    )
    assert (name, args) == ("save_name", {"name": value})


async def test_greeting_alone_is_not_a_value():
    response = await OfflineStandInLLM().generate(
        conversation("hello", "Collect the user's name using save_name tool."),
        [tool("save_name", {"name": {"type": "string"}})],
    )
    assert response.message == {"role": "assistant", "content": "What is your name?"}


async def test_two_free_text_params_cannot_be_guessed():
    response = await OfflineStandInLLM().generate(
        conversation("Ada Lovelace"),
        [tool("save_full_name", {"first": {"type": "string"}, "last": {"type": "string"}})],
    )
    assert "tool_calls" not in response.message


async def test_most_specific_tool_wins_and_all_required_must_fill():
    tools = [
        tool("save_name", {"name": {"type": "string"}}),
        tool("save_email", {"email": {"type": "string"}}),
        tool("save_both", {"email": {"type": "string"}, "age": {"type": "integer"}}),
    ]
    assert (await single_call("ada@example.com", tools))[0] == "save_email"
    name, args = await single_call("ada@example.com and I am 36", tools)
    assert name == "save_both" and args == {"email": "ada@example.com", "age": 36}


async def test_optional_parameters_filled_when_possible():
    signup = tool(
        "sign_up",
        {"email": {"type": "string"}, "newsletter": {"type": "boolean"}},
        required=["email"],
    )
    assert (await single_call("ada@example.com", [signup]))[1] == {"email": "ada@example.com"}
    assert (await single_call("ada@example.com, yes", [signup]))[1] == {
        "email": "ada@example.com",
        "newsletter": True,
    }


async def test_parameterless_tool_needs_its_name_mentioned():
    confirm = tool("confirm_booking", {})
    assert (await single_call("please confirm", [confirm]))[0] == "confirm_booking"
    response = await OfflineStandInLLM().generate(conversation("what?"), [confirm])
    assert "tool_calls" not in response.message


async def test_tool_call_ids_are_deterministic():
    tools = [tool("save_name", {"name": {"type": "string"}})]
    first = await OfflineStandInLLM().generate(conversation("Ada"), tools)
    second = await OfflineStandInLLM().generate(conversation("Ada"), tools)
    assert first.message == second.message
    assert first.message["tool_calls"][0]["id"].startswith("call_")


async def test_reply_after_tool_result_is_the_result():
    messages = [
        *conversation("Ada"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "save_name", "arguments": '{"name": "Ada"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Great, Ada! Now, what's your email?"},
    ]
    response = await OfflineStandInLLM().generate(
        messages, [tool("save_email", {"email": {"type": "string"}})]
    )
    assert response.message == {
        "role": "assistant",
        "content": "Great, Ada! Now, what's your email?",
    }
    assert response.finish_reason == "stop"


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("Welcome! Ask for the user's name.", "Welcome! What is your name?"),
        ("Collect the user's email using save_email tool.", "What is your email?"),
        ("Ask the user for their date of birth.", "What is your date of birth?"),
        ("Thank the user for completing onboarding.", "Thank you for completing onboarding!"),
        ("Say: Which plan would you like?", "Say: Which plan would you like?"),
        ("Be concise.", "Could you tell me more?"),
    ],
)
async def test_text_reply_restates_the_system_prompt(system, expected):
    response = await OfflineStandInLLM().generate(conversation("hm", system), None)
    assert response.message == {"role": "assistant", "content": expected}


async def test_usage_counts_words():
    response = await OfflineStandInLLM().generate(
        [
            {"role": "system", "content": "Ask for the user's name."},
            {"role": "user", "content": "hi there"},
        ]
    )
    assert response.usage["prompt_tokens"] == 7
    assert response.usage["completion_tokens"] == len(response.message["content"].split())
    assert response.usage["total_tokens"] == 7 + response.usage["completion_tokens"]


async def test_stream_yields_words_then_the_response():
    llm = OfflineStandInLLM()
    messages = conversation("hm", "Welcome! Ask for the user's name.")
    events = [event async for event in llm.stream(messages)]
    assert "".join(e.delta for e in events[:-1]) == "Welcome! What is your name?"
    assert [e.delta for e in events[:-1]] == ["Welcome!", " What", " is", " your", " name?"]
    assert events[-1].response == await llm.generate(messages)


async def test_parameterless_tool_called_when_the_prompt_says_so():
    start = tool("start", {})
    response = await OfflineStandInLLM().generate(
        conversation("hello", "Welcome! Greet the user and call start."), [start]
    )
    assert response.message["tool_calls"][0]["function"] == {"name": "start", "arguments": "{}"}
    response = await OfflineStandInLLM().generate(
        conversation("hello", "Welcome! Greet the user."), [start]
    )
    assert "tool_calls" not in response.message


async def test_tool_result_addressed_to_the_model_is_restated():
    messages = [
        *conversation("hello", "Welcome! Greet the user and call start."),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "start", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Ask for the user's name."},
    ]
    response = await OfflineStandInLLM().generate(messages)
    assert response.message["content"] == "What is your name?"


# -- tools that need approval: the built-in answer_approval (people in the loop) ----------

ACCEPT = tool("accept_quote", {"accept": {"type": "boolean"}})
ANSWER = tool("answer_approval", {"decision": {"type": "string", "enum": ["approve", "reject"]}})
FAQ = tool("policy_faq", {"topic": {"type": "string", "enum": ["excess", "cancellation"]}})


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ("yes", "approve"),
        ("ok", "approve"),
        ("Sure, go ahead", "approve"),
        ("I confirm", "approve"),
        ("no", "reject"),
        ("cancel that", "reject"),
        ("No, stop", "reject"),
    ],
)
async def test_a_yes_or_no_answers_a_pending_approval(text: str, decision: str) -> None:
    # accept_quote would take the yes/no too: the approval, being asked, comes first.
    name, arguments = await single_call(text, [ACCEPT, ANSWER])
    assert (name, arguments) == ("answer_approval", {"decision": decision})


async def test_without_a_pending_approval_a_yes_goes_to_the_step_s_tool() -> None:
    assert await single_call("yes", [ACCEPT]) == ("accept_quote", {"accept": True})


async def test_a_question_while_an_approval_waits_is_not_an_answer() -> None:
    name, arguments = await single_call("What is not covered by the excess?", [FAQ, ANSWER])
    assert (name, arguments) == ("policy_faq", {"topic": "excess"})


def _after(result: str) -> str:
    messages = [
        *conversation("yes", system="Would you like to accept this quote? Call accept_quote."),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "answer_approval", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": result},
    ]
    return str(OfflineStandInLLM().reply(messages, [ACCEPT]).message["content"])


def test_an_approved_result_is_said_without_its_lead_for_the_model() -> None:
    reply = _after("Approved by the user. Done! Your quote reference is Q-ABC123.")
    assert reply == "Done! Your quote reference is Q-ABC123."


def test_a_rejection_is_said_plainly_with_the_step_s_question() -> None:
    reply = _after("Rejected by the user: accept_quote was not run.")
    assert reply == "All right, I haven't done that. Would you like to accept this quote?"
