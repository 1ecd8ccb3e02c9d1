"""What the app writes: the ORM stores and the claim (``orm``), the event log (``events``),
the funnel's aggregates (``funnel_counts``), redaction and the database thread pool (``db``).
"""
