"""The layers import downwards only: the Django app never imports ``adapters/`` (the adapter
builds on the app, not the reverse), and the core never imports the Django app."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "agent_runtime_framework"


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, resolved to a dotted name inside the package."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        module = module.rsplit(".", 1)[0]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _violations(folder: str, forbidden: str) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for line, name in _imports(path)
        if name == forbidden or name.startswith(forbidden + ".")
    ]


def test_the_django_app_does_not_import_the_adapters() -> None:
    assert _violations("django", "agent_runtime_framework.adapters") == []


def test_the_core_does_not_import_the_django_app() -> None:
    core = [
        folder.name
        for folder in PACKAGE.iterdir()
        if folder.is_dir() and folder.name not in ("django", "adapters", "__pycache__")
    ]
    assert core, "no core packages found"
    for folder in core:
        # testing/ holds pytest fixtures that reach the app lazily, inside functions;
        # module-level imports are what would make the core need Django.
        found = _violations(folder, "agent_runtime_framework.django")
        assert [v for v in found if "testing" not in v] == [], found


def test_the_resolver_sees_the_adapter_import_it_must_refuse() -> None:
    """The check can fail: the adapter module itself imports the app, and is seen to."""
    assert _violations("adapters", "agent_runtime_framework.django") != []
