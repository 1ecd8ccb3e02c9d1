"""The app's admin: journey pages with the funnel and the graph, and the staff console.

Django's admin autodiscovery imports this package; importing ``journeys`` registers the
``ModelAdmin`` classes (it imports ``console`` in turn).
"""

from . import journeys  # noqa: F401  (registers the ModelAdmins)
