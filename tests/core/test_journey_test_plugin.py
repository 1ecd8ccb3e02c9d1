"""The pytest plugin in a fresh project (pytester): async tests as the README writes them,
conversation files, ``--journey-model`` and ``--journey-coverage``."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

README_TEST = """
from example_project.journeys.onboarding import OnboardingAgent, OnboardingStep

async def test_onboarding(scripted_llm, journey_driver):
    scripted_llm.call("save_name", name="Kim").reply("Thanks Kim, your email?")
    driver = journey_driver(OnboardingAgent(llm_client=scripted_llm))
    await driver.say("I'm Kim")
    driver.assert_step(OnboardingStep.COLLECT_EMAIL)
    assert driver.state.name == "Kim" and driver.tool_calls == ["save_name"]
    scripted_llm.assert_exhausted()
"""

ONBOARDING = {
    "agent": "example_project.journeys.onboarding.OnboardingAgent",
    "name": "name then email",
    "turns": [
        {
            "user": "I'm Ada Lovelace",
            "tools": [{"save_name": {"name": "Ada Lovelace"}}],
            "step": "collect_email",
            "state": {"name": "Ada Lovelace"},
        },
        {
            "user": "ada@example.com",
            "tools": [{"save_email": {"email": "ada@example.com"}}],
            "step": "complete",
            "reply": "you're all set",
        },
    ],
    "complete": True,
}

# The inner runs share this process, whose Django test environment is set up already;
# the fresh project is no Django project anyway.
FRESH = ("-p", "no:cacheprovider", "-p", "no:django")

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

NO_MODEL_ENV = ("AGENT_RUNTIME_LLM", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL")


def write_json(project: pytest.Pytester, text: str) -> None:
    # (makefile() would make "onboarding.conversation" + ".json" into "onboarding.json")
    project.path.joinpath("onboarding.conversation.json").write_text(text)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project whose ini says nothing about asyncio_mode (only the loop scope, which
    pytest-asyncio otherwise asks for with a deprecation warning)."""
    for name in NO_MODEL_ENV:
        monkeypatch.delenv(name, raising=False)
    pytester.makeini(INI)
    return pytester


def test_an_async_test_with_our_fixtures_runs_without_asyncio_mode(project):
    project.makepyfile(test_readme=README_TEST)
    result = project.runpytest(*FRESH)
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*not natively supported*")


def test_a_chosen_asyncio_mode_is_respected(project):
    project.makeini(INI + "asyncio_mode = strict\n")
    project.makepyfile(test_readme=README_TEST)
    result = project.runpytest(*FRESH)
    # strict mode, as the project asked: the unmarked async test is not run by asyncio
    assert result.parseoutcomes().get("passed", 0) == 0


def test_a_conversation_file_is_collected_and_played(project):
    write_json(project, json.dumps(ONBOARDING))
    result = project.runpytest(*FRESH, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*onboarding.conversation.json::name then email PASSED*"])


def test_a_yaml_file_with_several_conversations(project):
    pytest.importorskip("yaml")
    project.makefile(
        ".yaml",
        conversation_onboarding="""
agent: example_project.journeys.onboarding.OnboardingAgent
conversations:
  - name: first
    turns:
      - user: Hi, I'm Grace Hopper
        tools: [{save_name: {name: Grace Hopper}}]
        step: collect_email
  - name: second
    models: [standin]
    turns:
      - user: Hi
        step: welcome
""",
    )
    result = project.runpytest(*FRESH, "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*'second' is for models standin, not 'scripted'*"])


def test_a_failing_turn_shows_the_conversation_and_the_difference(project):
    wrong = json.loads(json.dumps(ONBOARDING))
    wrong["turns"][1]["model"] = [
        {"call": "save_email", "args": {"email": "ada@example"}},
        "Hmm.",
    ]
    write_json(project, json.dumps(wrong))
    result = project.runpytest(*FRESH)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*conversation 'name then email' with 'onboarding'*(model: scripted)",
            "*turn 1  user: I'm Ada Lovelace",
            "*tool: save_name(name='Ada Lovelace') -> *",
            "*step: collect_email",
            "*turn 2  user: ada@example.com",
            "*tool: save_email(email='ada@example') -> *does not look like an email address*",
            "turn 2 ('ada@example.com') differs:",
            "  step: expected 'complete', got 'collect_email'",
            "  tools: expected [save_email(email='ada@example.com')], "
            "got [save_email(email='ada@example')]",
            "  reply: expected it to contain \"you're all set\", got 'Hmm.'",
            "  complete: expected True after the last turn, got False",
        ]
    )
    # the report replaces the traceback through the framework
    result.stdout.no_fnmatch_line("*agents/journey.py*")


def test_the_same_file_runs_with_the_standin_and_skips_real_without_a_key(project):
    write_json(project, json.dumps(ONBOARDING))
    standin = project.runpytest(*FRESH, "--journey-model=standin")
    standin.assert_outcomes(passed=1)
    real = project.runpytest(*FRESH, "--journey-model=real", "-rs")
    real.assert_outcomes(skipped=1)
    real.stdout.fnmatch_lines(["*--journey-model=real: no model is configured*"])


def test_a_mistake_in_the_file_is_a_collection_error(project):
    bad = {**ONBOARDING, "turns": [{"user": "hi", "stpe": "welcome"}]}
    write_json(project, json.dumps(bad))
    result = project.runpytest(*FRESH)
    result.stdout.fnmatch_lines(["*unknown key(s) ?'stpe'?*"])
    assert result.ret != 0


def test_the_python_form_with_the_play_conversation_fixture(project):
    project.makepyfile(
        test_conv=f"""
from agent_runtime_framework.testing.conversations import Conversation, Turn

ONBOARDING = {ONBOARDING!r}

async def test_from_a_dict(play_conversation):
    run = await play_conversation(ONBOARDING)
    assert run.results[-1].complete

async def test_from_dataclasses(play_conversation):
    await play_conversation(Conversation(
        agent="example_project.journeys.onboarding.OnboardingAgent",
        turns=[Turn("I'd like to open an account", tools=["open_account"],
                    step="collect_name")],
    ))
"""
    )
    result = project.runpytest(*FRESH)
    result.assert_outcomes(passed=2)


def test_journey_coverage_reports_steps_transitions_and_tools(project):
    half = {**ONBOARDING, "turns": ONBOARDING["turns"][:1], "complete": None}
    write_json(project, json.dumps(half))
    result = project.runpytest(*FRESH, "--journey-coverage")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= journey coverage =*",
            "Journey * Turns * Steps * Transitions * Tools",
            "onboarding (example_project.journeys.onboarding.OnboardingAgent) * 1 "
            "* 2/4 * 1/4 * 1/3",
            "onboarding (example_project.journeys.onboarding.OnboardingAgent):",
            "  steps never reached: collect_name, complete",
            "  transitions never taken: welcome -> collect_name, "
            "collect_name -> collect_email, collect_email -> complete",
            "  tools never called: open_account, save_email",
        ]
    )


def test_no_coverage_report_without_the_option(project):
    write_json(project, json.dumps(ONBOARDING))
    result = project.runpytest(*FRESH)
    result.stdout.no_fnmatch_line("*journey coverage*")
