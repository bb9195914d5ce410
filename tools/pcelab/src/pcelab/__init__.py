"""pcelab: an offline Illumio PCE REST API server for tests, demos and molecule runs."""

__version__ = "0.1.0"
