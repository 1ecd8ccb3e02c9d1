"""The example chat page: a template and a little plain JavaScript over the HTTP API."""
