"""``DATABASE_URL`` -> a Django ``DATABASES`` entry: dj-database-url, plus our defaults.

The parsing is dj-database-url's (every scheme it knows). What this adds is what the
example project, the tests and the benchmarks want from it: an empty URL means SQLite at
``default_sqlite``; SQLite gets a lock timeout, immediate transactions (web and worker
processes write one file) and a file test database (database threads must share one
database, which ``:memory:`` cannot); every database keeps its connections
(``CONN_MAX_AGE``), because journeys use a pool of database threads.
"""

from __future__ import annotations

from typing import Any

import dj_database_url

__all__ = ["database_from_url"]


def database_from_url(url: str, *, default_sqlite: str = "db.sqlite3") -> dict[str, Any]:
    """The ``DATABASES["default"]`` entry for ``url`` (empty: SQLite at ``default_sqlite``)."""
    if not url:
        url = f"sqlite:///{default_sqlite}"
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=600))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        path = str(config.get("NAME") or default_sqlite)
        config["NAME"] = path
        options = config.setdefault("OPTIONS", {})
        options.setdefault("timeout", 20)
        # Writers take the lock when their transaction begins, so one that read first never
        # fails "database is locked" at once on upgrading (web and worker processes).
        options.setdefault("transaction_mode", "IMMEDIATE")
        config["TEST"] = {"NAME": f"{path}.test" if path != ":memory:" else ""}
    else:
        config["CONN_MAX_AGE"] = 60
        config["TEST"] = {"NAME": f"test_{config.get('NAME')}"}
    return config
