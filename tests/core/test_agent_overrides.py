"""The seed's optional overrides and per-agent configuration."""

import uuid

from agent_runtime_framework import AgentContext, JourneyConfig
from agent_runtime_framework.testing import ScriptedLLM, tool_call
from tests.journeys import OnboardingAgent, OnboardingState, OnboardingStep


class ExternalStore:
    def __init__(self):
        self.saved = {}


async def test_load_state_and_save_state_overrides_are_used():
    store = ExternalStore()

    class Persisting(OnboardingAgent):
        async def load_state(self, ctx: AgentContext) -> OnboardingState | None:
            data = store.saved.get(ctx.conversation_id)
            return OnboardingState.from_dict(data) if data else None

        async def save_state(self, ctx: AgentContext, state: OnboardingState) -> None:
            store.saved[ctx.conversation_id] = state.to_dict()

    conversation = uuid.uuid4()
    store.saved[conversation] = {"step": "collect_email", "name": "Eve"}
    llm = ScriptedLLM([tool_call("save_email", email="eve@x.io"), "Done, Eve."])
    result = await Persisting(llm_client=llm).run(
        AgentContext.for_message(conversation, "eve@x.io")
    )
    assert result.state.name == "Eve" and result.step == OnboardingStep.COMPLETE
    assert store.saved[conversation] == {"step": "complete", "name": "Eve", "email": "eve@x.io"}
    assert llm.calls[0].tool_names == ["save_email"]


async def test_is_terminal_state_override_sets_complete():
    class NeverDone(OnboardingAgent):
        def is_terminal_state(self, state: OnboardingState) -> bool:
            return False

    llm = ScriptedLLM([tool_call("start"), "Name?"])
    result = await NeverDone(llm_client=llm).run(AgentContext.for_message(uuid.uuid4(), "hi"))
    assert result.complete is False


async def test_history_window_limits_what_the_model_sees():
    script = [tool_call("start"), "Name?"] + ["Still here."] * 5
    llm = ScriptedLLM(script)
    agent = OnboardingAgent(llm_client=llm, config=JourneyConfig(max_history_messages=3))
    conversation = uuid.uuid4()
    for text in ["hi", "a", "b", "c", "d", "e"]:
        await agent.run(AgentContext.for_message(conversation, text))
    sent = llm.calls[-1].messages
    assert sent[0]["role"] == "system"
    assert [m["content"] for m in sent[1:]] == ["d", "Still here.", "e"]
    stored = await agent.memory.conversation_store.get_messages(conversation)
    assert len(stored) == 14  # the store keeps everything (4 + 5 x 2)


async def test_llm_kwargs_reach_the_client():
    llm = ScriptedLLM(["hello"])
    agent = OnboardingAgent(llm_client=llm, config=JourneyConfig(llm_kwargs={"temperature": 0.1}))
    await agent.run(AgentContext.for_message(uuid.uuid4(), "hi"))
    assert llm.calls[0].kwargs == {"temperature": 0.1}


async def test_progress_follows_the_branch_of_a_branching_journey():
    from agent_runtime_framework.agents import journey_progress
    from tests.core.test_executor_guarantees import QuoteAgent, QuoteState, QuoteStep

    class BranchingQuote(QuoteAgent):
        def get_step_path(self, state: QuoteState) -> list[QuoteStep]:
            return [QuoteStep.COVER, QuoteStep.DONE] if state.age else list(QuoteStep)

    agent = BranchingQuote()
    assert journey_progress(agent, QuoteState(step=QuoteStep.AGE)) == (
        2,
        3,
        ["cover", "age", "done"],
    )
    assert journey_progress(agent, QuoteState(step=QuoteStep.DONE, age=30)) == (
        2,
        2,
        ["cover", "done"],
    )
    # Without an override the enum order is the path.
    assert journey_progress(QuoteAgent(), QuoteState(step=QuoteStep.AGE))[:2] == (2, 3)
