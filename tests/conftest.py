"""Shared fixtures: the framework config is reset around every test."""

import pytest

from agent_runtime_framework import reset_config


@pytest.fixture(autouse=True)
def _fresh_framework_config():
    reset_config()
    yield
    reset_config()
