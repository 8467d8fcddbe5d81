"""Checks of the CI configuration files (run by ``nox -s ci``, not by the tests session)."""
