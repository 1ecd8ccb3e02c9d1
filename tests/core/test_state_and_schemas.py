"""State serialization without boilerplate, versions, and schemas from signatures."""

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel

from agent_runtime_framework import (
    BaseJourneyState,
    BaseJourneyTools,
    StateError,
    StateSerializer,
    ToolSchema,
    tool,
)
from agent_runtime_framework.tools import ArgumentError


class Step(str, Enum):
    START = "start"
    END = "end"


class Colour(Enum):
    RED = 1
    BLUE = 2


@dataclass
class Address:
    street: str = ""
    moved_in: date | None = None


@dataclass
class RichState(BaseJourneyState[Step]):
    step: Step = Step.START
    id: UUID | None = None
    born: date | None = None
    seen_at: datetime | None = None
    premium: Decimal = Decimal("0")
    colour: Colour | None = None
    address: Address = field(default_factory=Address)
    drivers: list[Address] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)
    note: str | None = None


def test_rich_state_round_trips_exactly_through_json():
    import json

    state = RichState(
        step=Step.END,
        id=uuid4(),
        born=date(1990, 2, 28),
        seen_at=datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2))),
        premium=Decimal("1234.50"),
        colour=Colour.BLUE,
        address=Address("Main St 1", date(2020, 1, 1)),
        drivers=[Address("A"), Address("B", date(2021, 5, 6))],
        scores={"a": 1},
        note=None,
    )
    data = json.loads(json.dumps(state.to_dict()))
    assert data["step"] == "end" and data["premium"] == "1234.50" and data["colour"] == 2
    loaded = RichState.from_dict(data)
    assert loaded == state
    assert str(loaded.premium) == "1234.50" and loaded.seen_at.utcoffset() == timedelta(hours=2)


def test_missing_keys_take_defaults_and_unknown_keys_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="agent_runtime_framework.state"):
        state = RichState.from_dict({"step": "end", "legacy_field": 1})
    assert state == RichState(step=Step.END)
    assert "legacy_field" in caplog.text


@pytest.mark.parametrize(
    ("data", "field_name"),
    [
        ({"step": "middle"}, "step"),
        ({"premium": "lots"}, "premium"),
        ({"drivers": [{"moved_in": "not a date"}]}, "drivers.0.moved_in"),
        ({"scores": ["a"]}, "scores"),
    ],
)
def test_wrong_values_fail_naming_the_field(data, field_name):
    with pytest.raises(StateError) as info:
        RichState.from_dict(data)
    assert info.value.field == field_name
    assert f"field '{field_name}'" in str(info.value)


def test_hand_written_serialization_wins():
    @dataclass
    class Custom(BaseJourneyState[Step]):
        step: Step = Step.START

        def to_dict(self) -> dict:
            return {"s": self.step.value}

        @classmethod
        def from_dict(cls, data: dict) -> "Custom":
            return cls(step=Step(data["s"]))

    assert Custom(Step.END).to_dict() == {"s": "end"}
    assert StateSerializer.load(Custom, StateSerializer.dump(Custom(Step.END))) == Custom(Step.END)


@dataclass
class VersionedState(BaseJourneyState[Step]):
    state_version: ClassVar[int] = 3
    step: Step = Step.START
    full_name: str = ""
    email: str = ""

    @classmethod
    def migrate(cls, data: dict[str, Any], from_version: int) -> dict[str, Any]:
        if from_version < 2:
            data["full_name"] = f"{data.pop('first', '')} {data.pop('last', '')}".strip()
        if from_version < 3:
            data["email"] = data.pop("mail", "")
        return data


def test_older_state_versions_are_migrated():
    old = {"step": "start", "first": "Ada", "last": "Lovelace", "mail": "ada@x.io"}
    state = StateSerializer.load(VersionedState, old)
    assert state == VersionedState(full_name="Ada Lovelace", email="ada@x.io")
    v2 = {"_version": 2, "step": "end", "full_name": "Bo", "mail": "bo@x.io"}
    assert StateSerializer.load(VersionedState, v2).email == "bo@x.io"
    dumped = StateSerializer.dump(state)
    assert dumped["_version"] == 3
    assert StateSerializer.load(VersionedState, dumped) == state


def test_newer_or_unmigratable_versions_fail_clearly():
    with pytest.raises(StateError, match="newer than this code"):
        StateSerializer.load(VersionedState, {"_version": 9})
    with pytest.raises(StateError, match="_version"):
        StateSerializer.load(VersionedState, {"_version": "two"})

    @dataclass
    class NoMigrate(BaseJourneyState[Step]):
        state_version: ClassVar[int] = 2
        step: Step = Step.START

    with pytest.raises(NotImplementedError, match=r"override NoMigrate\.migrate"):
        StateSerializer.load(NoMigrate, {"step": "start"})


def test_non_dataclass_state_says_what_to_do():
    class Plain(BaseJourneyState[Step]):
        name: str = ""

    with pytest.raises(TypeError, match="not a dataclass"):
        Plain(step=Step.START).to_dict()


# -- schemas from signatures --------------------------------------------------------------------


class Vehicle(BaseModel):
    make: str
    year: int


@dataclass
class Driver:
    name: str
    age: int


async def register(
    cover: Colour,
    plan: Literal["basic", "premium"],
    vehicle: Vehicle,
    drivers: list[Driver],
    start: date | None = None,
    notes: str = "",
) -> str:
    """Register a policy.

    Args:
        cover: Which cover colour.
        plan: The plan; premium costs
            more.
        vehicle: The insured vehicle.
        drivers: Everyone who drives it.
        start: First day of cover.
    """
    return "ok"


def test_schema_from_function_signature_and_docstring():
    schema = ToolSchema.from_function(register)
    fmt = schema.to_openai_format()["function"]
    assert fmt["name"] == "register" and fmt["description"] == "Register a policy."
    params = fmt["parameters"]
    props = params["properties"]
    assert params["required"] == ["cover", "plan", "vehicle", "drivers"]
    assert props["plan"]["enum"] == ["basic", "premium"]
    assert props["plan"]["description"] == "The plan; premium costs more."
    assert props["drivers"]["type"] == "array"
    assert "$defs" in params and {"Vehicle", "Driver", "Colour"} <= set(params["$defs"])
    assert params["additionalProperties"] is False

    args = schema.validate_arguments(
        '{"cover": 2, "plan": "basic", "vehicle": {"make": "VW", "year": "2019"},'
        ' "drivers": [{"name": "A", "age": 30}], "start": "2025-03-01"}'
    )
    assert args["cover"] is Colour.BLUE and args["vehicle"] == Vehicle(make="VW", year=2019)
    assert args["drivers"] == [Driver("A", 30)] and args["start"] == date(2025, 3, 1)
    assert args["notes"] == ""
    with pytest.raises(ArgumentError, match=r"vehicle\.year"):
        schema.validate_arguments(
            {"cover": 1, "plan": "basic", "vehicle": {"make": "x", "year": "old"}, "drivers": []}
        )


def test_sphinx_docstrings_and_tool_decorator_steps():
    class Tools(BaseJourneyTools[Any]):
        @tool(steps=[Step.START], description="Set the name")
        def set_name(self, name: str) -> str:
            """:param name: The user's full name."""
            return name

        @tool
        def anywhere(self, flag: bool = False) -> str:
            """Works at every step."""
            return "x"

        def helper(self) -> None:
            """Not a tool."""

    assert [s.name for s in Tools.tool_schemas(Step.START)] == ["set_name", "anywhere"]
    assert [s.name for s in Tools.tool_schemas(Step.END)] == ["anywhere"]
    schema = Tools.tool_schemas(Step.START)[0]
    assert schema.description == "Set the name"
    assert (
        schema.parameters_schema()["properties"]["name"]["description"] == "The user's full name."
    )


def test_invalid_tool_definitions_fail_early():
    with pytest.raises(ValueError, match="1-64 letters"):
        ToolSchema(name="has space")
    from agent_runtime_framework import ToolParameter, ToolSchemaBuilder

    with pytest.raises(ValueError, match="use one of"):
        ToolParameter(name="x", type="str")
    with pytest.raises(ValueError, match="already has a parameter"):
        ToolSchemaBuilder("t").param("a").param("a")
    assert ToolSchemaBuilder("t").param("c", enum=Colour).build().parameters[0].enum == [1, 2]
