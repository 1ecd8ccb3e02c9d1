"""System checks (filled in by the Django app work)."""
