"""``DATABASE_URL`` -> a Django ``DATABASES`` entry (sqlite and postgres), no extra dependency."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

__all__ = ["database_from_url"]


def database_from_url(url: str, *, default_sqlite: str = "db.sqlite3") -> dict[str, Any]:
    """Parse ``postgres://user:pass@host:port/name`` or ``sqlite:///path``; empty -> SQLite."""
    if not url:
        return _sqlite(default_sqlite)
    parsed = urlparse(url)
    scheme = parsed.scheme.split("+")[0]
    if scheme == "sqlite":
        path = unquote(parsed.path)
        if path.startswith("//"):
            path = path[1:]
        elif path.startswith("/"):
            path = path[1:] if not parsed.netloc else path
        return _sqlite(path or default_sqlite)
    if scheme in ("postgres", "postgresql", "pgsql"):
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        name = unquote(parsed.path.lstrip("/")) or "postgres"
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "TEST": {"NAME": f"test_{name}"},
        }
    raise ValueError(
        f"Unsupported DATABASE_URL scheme {parsed.scheme!r}: use sqlite:// or postgres://"
    )


def _sqlite(path: str) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # A file (not :memory:) for tests too, so threads share one database.
        "TEST": {"NAME": f"{path}.test" if path != ":memory:" else ""},
        "OPTIONS": {"timeout": 20},
        # Database threads keep their connection instead of reconnecting per call.
        "CONN_MAX_AGE": 600,
    }
