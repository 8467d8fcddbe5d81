"""The browser package's pure parts: settings, URL policy, redaction, merging, /proc helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from browser.capture import ErrorRecord, merge_records, redact_url
from browser.global_browser import GlobalBrowser
from browser.processes import descendants, is_alive, pids_with_marker, process_state
from browser.settings import find_chromium, load_settings
from browser.url_policy import check_url, host_allowed
from external_api.config import ConfigurationError
from external_api.errors import ApiError, InvalidParams
from tests.browser.conftest import chromium_problem, require_chromium

# ---------------------------------------------------------------- settings


def test_settings_come_from_workspace_browser_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WORKSPACE_BROWSER_HEADLESS", "false")
    monkeypatch.setenv("WORKSPACE_BROWSER_MAX_PAGES", "3")
    monkeypatch.setenv("WORKSPACE_BROWSER_CDP_PORT", "9333")
    monkeypatch.setenv("WORKSPACE_BROWSER_ALLOWED_HOSTS", "Example.com, *.Docs.Example.com")
    monkeypatch.setenv("WORKSPACE_BROWSER_EXTRA_ARGS", "--lang=de,--mute-audio")
    monkeypatch.setenv("WORKSPACE_BROWSER_EXECUTABLE", sys.executable)
    settings = load_settings()
    assert settings.headless is False
    assert settings.max_pages == 3
    assert settings.cdp_port == 9333
    assert settings.allowed_hosts == ("example.com", "*.docs.example.com")
    assert settings.allowed_schemes == ("http", "https")
    assert settings.extra_args == ("--lang=de", "--mute-audio")
    assert settings.resolved_executable() == Path(sys.executable)


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HEADLESS", "MAX_PAGES", "CDP_PORT", "ALLOWED_HOSTS", "EXECUTABLE"):
        monkeypatch.delenv(f"WORKSPACE_BROWSER_{name}", raising=False)
    settings = load_settings()
    assert (settings.headless, settings.max_pages, settings.cdp_port) == (True, 8, None)
    assert settings.allowed_hosts == ()
    assert settings.resolved_executable() == find_chromium()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WORKSPACE_BROWSER_MAX_PAGES", "0", "WORKSPACE_BROWSER_MAX_PAGES"),
        ("WORKSPACE_BROWSER_CDP_PORT", "70000", "WORKSPACE_BROWSER_CDP_PORT"),
        ("WORKSPACE_BROWSER_EXECUTABLE", "/nonexistent/chromium", "is not an executable"),
        ("WORKSPACE_BROWSER_TIMEOUT", "soon", "WORKSPACE_BROWSER_TIMEOUT"),
    ],
)
def test_invalid_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=expected) as caught:
        load_settings()
    assert "invalid browser settings" in str(caught.value)


def test_find_chromium_is_none_without_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_chromium() is None
    fake = tmp_path / "chromium-browser"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_chromium() == fake


# ---------------------------------------------------------------- URL policy


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("example.com", (), True),
        ("example.com", ("example.com",), True),
        ("EXAMPLE.com.", ("example.com",), True),
        ("www.example.com", ("example.com",), False),
        ("www.example.com", ("*.example.com",), True),
        ("example.com", ("*.example.com",), True),
        ("badexample.com", ("*.example.com",), False),
    ],
)
def test_host_allowlist(host: str, allowed: tuple[str, ...], expected: bool) -> None:
    assert host_allowed(host, allowed) is expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("chrome://settings", "scheme 'chrome' is not allowed"),
        ("data:text/html,hi", "scheme 'data' is not allowed"),
        ("example.com/page", "no scheme"),
        ("http:///path", "no host"),
        ("http://[::1", "not a valid URL"),
        ("https://evil.test/", "not in WORKSPACE_BROWSER_ALLOWED_HOSTS"),
    ],
)
def test_check_url_refuses_with_a_reason(url: str, reason: str) -> None:
    settings = load_settings(allowed_hosts=("example.com",))
    with pytest.raises(InvalidParams, match="refusing to open") as caught:
        check_url(url, settings)
    assert reason in caught.value.field_errors[0]["message"]
    assert caught.value.to_payload()["details"]["fields"][0]["field"] == "url"


def test_check_url_accepts_and_schemes_are_configurable() -> None:
    assert check_url("  https://example.com/a  ", load_settings()) == "https://example.com/a"
    settings = load_settings(allowed_schemes="https")
    with pytest.raises(InvalidParams, match="allowed: https"):
        check_url("http://example.com/", settings)


# ---------------------------------------------------------------- redaction and merging


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h/p?q=1", "https://h/p?q=1"),
        ("https://h/p?api_key=s&q=1", "https://h/p?api_key=%5BREDACTED%5D&q=1"),
        ("https://h/p?Token=s#frag", "https://h/p?Token=%5BREDACTED%5D#frag"),
        (
            "https://user:pw@h/p",
            "https://%5BREDACTED%5D:%5BREDACTED%5D@h/p".replace("%5BREDACTED%5D", "[REDACTED]"),
        ),
        ("https://user@h/p", "https://[REDACTED]@h/p"),
        ("http://[::1/", "http://[::1/"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def record(kind: str, message: str, url: str = "", **fields: Any) -> ErrorRecord:
    base: dict[str, Any] = {
        "type": kind,
        "message": message,
        "url": url,
        "line": None,
        "column": None,
        "stack": "",
        "timestamp": time.time(),
    }
    return ErrorRecord(**{**base, **fields})  # type: ignore[typeddict-item]  # test builder


def test_merge_prefers_the_extension_and_completes_it() -> None:
    extension = [
        {"type": "console", "message": "m", "url": "u", "timestamp": 2000},
        {"type": "unhandledrejection", "message": "Error: r", "url": "u", "timestamp": 1000},
        {"type": "bogus", "message": "x", "line": True, "timestamp": "late"},
    ]
    playwright = [
        record("console", "m", "u", line=3, column=4, stack="s", timestamp=5.0),
        record("error", "Error: r", "u", line=7, column=1, timestamp=5.0),
    ]
    merged = merge_records(extension, playwright, cap=10)
    assert [(r["type"], r["message"], r["line"]) for r in merged] == [
        ("unhandledrejection", "Error: r", 7),
        ("console", "m", 3),
        ("error", "x", None),
    ]
    assert merged[0]["timestamp"] == 1.0
    assert merged[1]["stack"] == "s"


def test_merge_keeps_repeated_errors_and_collapses_failed_urls() -> None:
    extension: list[dict[str, Any]] = [
        {"type": "error", "message": "E", "timestamp": 1},
        {"type": "error", "message": "E", "timestamp": 2},
        {
            "type": "network",
            "message": "failed to load <img> http://h/x.png",
            "url": "http://h/x.png",
        },
    ]
    playwright = [
        record("error", "E"),
        record("error", "E"),
        record("error", "E"),  # the third is new: the extension saw only two
        record("http", "HTTP 404 (GET http://h/x.png)", "http://h/x.png"),
        record("network", "net::ERR_FAILED (GET http://h/y)", "http://h/y"),
        record("network", "net::ERR_FAILED (GET http://h/y)", "http://h/y"),
    ]
    merged = merge_records(extension, playwright, cap=100)
    assert sorted((r["type"], r["message"]) for r in merged) == [
        ("error", "E"),
        ("error", "E"),
        ("error", "E"),
        ("http", "HTTP 404 (GET http://h/x.png)"),
        ("network", "net::ERR_FAILED (GET http://h/y)"),
    ]


def test_merge_cap_keeps_the_newest() -> None:
    playwright = [record("console", f"m{i}", timestamp=float(i)) for i in range(10)]
    assert [r["message"] for r in merge_records([], playwright, cap=3)] == ["m7", "m8", "m9"]


# ---------------------------------------------------------------- /proc helpers


def test_process_helpers_find_live_and_zombie_children(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker-dir")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    quitter = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while process_state(quitter.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process_state(quitter.pid) == "Z"  # exited, not yet waited for
        assert not is_alive(quitter.pid)
        assert is_alive(sleeper.pid)
        assert pids_with_marker(marker) == [sleeper.pid]
        assert {sleeper.pid, quitter.pid} <= set(descendants(os.getpid()))
    finally:
        sleeper.kill()
        sleeper.wait()
        quitter.wait()
    assert process_state(quitter.pid) is None
    assert pids_with_marker(marker) == []


# ---------------------------------------------------------------- missing Chromium


def test_missing_chromium_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("WORKSPACE_BROWSER_EXECUTABLE", raising=False)
    browser = GlobalBrowser(load_settings())
    try:
        with pytest.raises(ApiError, match="no Chromium found: install one"):
            browser.start()
    finally:
        browser.close()
    assert "No Chromium found" in (chromium_problem() or "")


def test_missing_chromium_fails_under_ci_and_skips_elsewhere() -> None:
    with pytest.raises(pytest.fail.Exception, match="CI=true and the browser tests cannot run"):
        require_chromium("No Chromium found", ci=True)
    with pytest.raises(pytest.skip.Exception, match="No Chromium found"):
        require_chromium("No Chromium found", ci=False)
    require_chromium(None, ci=True)
