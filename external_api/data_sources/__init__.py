"""Data sources: one module per upstream API, discovered by ``ApiClient`` without importing."""
