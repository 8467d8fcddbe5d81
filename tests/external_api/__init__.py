"""Tests of external_api's settings, transport, ApiClient and data sources."""
