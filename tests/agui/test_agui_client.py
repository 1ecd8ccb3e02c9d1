"""The official AG-UI client (@ag-ui/client's HttpAgent, in Node) completes the example's
onboarding journey over three runs of one thread, against the example project under uvicorn.

HttpAgent checks the event stream against the protocol as it applies it (RUN_STARTED first,
messages and tool calls opened before content and closed before RUN_FINISHED, steps
balanced, ...), so a run that ends without an error is also a protocol-valid stream.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

MESSAGES = ("Hi", "I'm Ada Lovelace", "ada@example.com")


def _types(run: dict[str, Any]) -> list[str]:
    return [event["type"] for event in run["events"]]


def _of(run: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event for event in run["events"] if event["type"] == kind]


def test_httpagent_completes_the_onboarding_journey(
    example_agui_server: Any, agui_client: Any
) -> None:
    out = agui_client("journey", example_agui_server.base_url, "onboarding", *MESSAGES)
    runs = out["runs"]
    assert [run["message"] for run in runs] == list(MESSAGES)
    for run in runs:
        assert "error" not in run, run.get("error")
        types = _types(run)
        assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED", types
        assert run["events"][0]["threadId"] == out["threadId"]
        assert "RUN_ERROR" not in types

    # Text: every run answers with one assistant message, streamed in word deltas.
    for run in runs:
        counts = Counter(_types(run))
        assert counts["TEXT_MESSAGE_START"] == counts["TEXT_MESSAGE_END"] == 1, counts
        assert counts["TEXT_MESSAGE_CONTENT"] > 1, "the stand-in streams: deltas, not one event"
        text = "".join(e["delta"] for e in _of(run, "TEXT_MESSAGE_CONTENT"))
        assert text == _of(run, "RUN_FINISHED")[0]["result"]["reply"]
    assert "What is your name?" in "".join(e["delta"] for e in _of(runs[0], "TEXT_MESSAGE_CONTENT"))

    # Tool calls: the journey's tools, each START/ARGS/END then its RESULT, same id.
    calls = {run["message"]: _of(run, "TOOL_CALL_START") for run in runs}
    assert calls["Hi"] == []
    assert [c["toolCallName"] for c in calls["I'm Ada Lovelace"]] == ["save_name"]
    assert [c["toolCallName"] for c in calls["ada@example.com"]] == ["save_email"]
    for run in runs[1:]:
        call_id = _of(run, "TOOL_CALL_START")[0]["toolCallId"]
        args = json.loads("".join(e["delta"] for e in _of(run, "TOOL_CALL_ARGS")))
        assert _of(run, "TOOL_CALL_END")[0]["toolCallId"] == call_id
        result = _of(run, "TOOL_CALL_RESULT")[0]
        assert result["toolCallId"] == call_id and result["content"]
        order = _types(run)
        assert (
            order.index("TOOL_CALL_START")
            < order.index("TOOL_CALL_ARGS")
            < order.index("TOOL_CALL_END")
            < order.index("TOOL_CALL_RESULT")
        )
    assert json.loads(_of(runs[1], "TOOL_CALL_ARGS")[0]["delta"]) == {"name": "Ada Lovelace"}
    assert args == {"email": "ada@example.com"}

    # Steps: each run is bracketed by the step it is in; a change finishes one, starts the next.
    steps = [
        [(e["type"], e["stepName"]) for e in run["events"] if e["type"].startswith("STEP_")]
        for run in runs
    ]
    assert steps[0] == [("STEP_STARTED", "welcome"), ("STEP_FINISHED", "welcome")]
    assert steps[1] == [
        ("STEP_STARTED", "welcome"),
        ("STEP_FINISHED", "welcome"),
        ("STEP_STARTED", "collect_email"),
        ("STEP_FINISHED", "collect_email"),
    ]
    assert steps[2] == [
        ("STEP_STARTED", "collect_email"),
        ("STEP_FINISHED", "collect_email"),
        ("STEP_STARTED", "complete"),
        ("STEP_FINISHED", "complete"),
    ]
    deltas = [e["delta"] for e in _of(runs[2], "STATE_DELTA")]
    assert [{"op": "replace", "path": "/step", "value": "complete"}] in deltas
    assert [{"op": "replace", "path": "/complete", "value": True}] in deltas

    # State: the snapshot before and after each run; the last one says complete.
    first = _of(runs[0], "STATE_SNAPSHOT")[0]["snapshot"]
    assert first["step"] == "welcome" and first["complete"] is False
    assert first["conversation_id"] == out["threadId"]
    final = _of(runs[2], "STATE_SNAPSHOT")[-1]["snapshot"]
    assert final["complete"] is True
    assert final["step"] == "complete"
    # welcome and collect_name are one position of the example's onboarding (step_groups)
    assert final["progress"]["index"] == final["progress"]["total"] == 3
    assert final["state"]["name"] == "Ada Lovelace"
    assert final["state"]["email"] == "ada@example.com"
    # HttpAgent applied snapshots and deltas to its own copy of the state.
    assert out["state"] == final
    # ... and built the conversation from the events: the user's messages, the replies,
    # the tool calls and their results.
    roles = Counter(message["role"] for message in out["messages"])
    assert roles["user"] == 3 and roles["tool"] == 2 and roles["assistant"] >= 3

    # The server played the journey: the conversation is stored under the thread id.
    stored = example_agui_server.manage(
        "shell",
        "-c",
        "from agent_runtime_framework.django.models import Journey; "
        f"j = Journey.objects.get(conversation_id='{out['threadId']}'); "
        "print(j.step, j.status, j.conversation.session_key != '')",
    )
    assert stored.strip().splitlines()[-1].split() == ["complete", "complete", "True"]
    assert "Traceback" not in example_agui_server.log()


def test_httpagent_drives_a_routed_journey_through_the_front_desk(
    example_agui_server: Any, agui_client: Any
) -> None:
    """A routed conversation: the front desk routes, switches, and the snapshot follows."""
    messages = (
        "I'd like a quote for my car",
        "Actually no, I want to file a claim instead",
        "It's POL-123456",
    )
    out = agui_client("journey", example_agui_server.base_url, "front-desk", *messages)
    runs = out["runs"]
    for run in runs:
        assert "error" not in run, run.get("error")
        types = _types(run)
        assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED", types
    snapshots = [_of(run, "STATE_SNAPSHOT")[-1]["snapshot"] for run in runs]
    assert snapshots[0]["journey"] == "quote" and snapshots[0]["step"] == "add_driver"
    assert snapshots[1]["journey"] == "claim" and snapshots[1]["step"] == "policy_number"
    assert snapshots[2]["step"] == "incident_date" and snapshots[2]["complete"] is False
    switched = [c["toolCallName"] for c in _of(runs[1], "TOOL_CALL_START")]
    assert "switch_journey" in switched
