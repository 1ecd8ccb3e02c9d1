#!/usr/bin/env python3
"""Django's command-line utility for the example project."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Django is not importable. Did you activate the virtualenv? "
            "(python3 run.py demo creates one in .venv)"
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
