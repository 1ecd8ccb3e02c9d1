"""Every ``from agent_runtime_framework... import ...`` and every dotted path the README shows
resolves: the layout of the package can change, the README's lines must keep working."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
IMPORT = re.compile(r"^\s*from (agent_runtime_framework[\w.]*) import \(?([\w, ]+)", re.M)
DOTTED = re.compile(r"[`\"'](agent_runtime_framework(?:\.\w+)+)[`\"']")


def test_the_readmes_imports_resolve() -> None:
    text = README.read_text()
    found = IMPORT.findall(text)
    assert len(found) > 10, "the README's imports were not found"
    missing = []
    for module, names in found:
        imported = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            if name and not hasattr(imported, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    missing.append(f"from {module} import {name}")
    assert missing == []


def test_the_readmes_dotted_paths_resolve() -> None:
    missing = []
    paths = set(DOTTED.findall(README.read_text()))
    assert paths
    for path in sorted(paths):
        try:
            importlib.import_module(path)
            continue
        except ImportError:
            pass
        module, _, attribute = path.rpartition(".")
        try:
            if not hasattr(importlib.import_module(module), attribute):
                missing.append(path)
        except ImportError:
            missing.append(path)
    assert missing == []
