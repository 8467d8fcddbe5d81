"""The `workspace` command: functions, call, sources, config, serve, help and errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from external_api.cli import main, parse_arguments
from external_api.config import reset_settings
from tests.fakes import FakeUpstreams
from tests.ports import free_port
from tests.server.conftest import TOKEN, ServerThread


def test_parse_arguments() -> None:
    assert parse_arguments(["symbol=AAPL", "n=10", "tags:=[1, 2]", "x:=null", "q=a=b"]) == {
        "symbol": "AAPL",
        "n": "10",
        "tags": [1, 2],
        "x": None,
        "q": "a=b",
    }
    with pytest.raises(ValueError, match="not key=value"):
        parse_arguments(["symbol"])
    with pytest.raises(ValueError, match="not JSON"):
        parse_arguments(["tags:=[1,"])


@pytest.mark.parametrize("command", ["serve", "functions", "call", "sources", "config", "version"])
def test_help_for_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    assert f"usage: workspace {command}" in capsys.readouterr().out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_functions_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["functions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["NAME", "PARAMETERS"]
    chart = next(line for line in lines if line.startswith("YahooFinance/get_stock_chart "))
    assert "symbol*" in chart
    assert any(line.startswith("Browser/visit ") for line in lines)
    assert main(["functions", "--json"]) == 0
    specs = json.loads(capsys.readouterr().out)
    assert {"name", "description", "parameters"} == set(specs[0])
    assert main(["functions", "--openai"]) == 0
    tools = json.loads(capsys.readouterr().out)
    assert all(tool["type"] == "function" and "/" not in tool["function"]["name"] for tool in tools)


def test_call_in_process(capsys: pytest.CaptureFixture[str], upstreams: FakeUpstreams) -> None:
    assert main(["call", "Test/add", "a=2", "b=3"]) == 0
    assert json.loads(capsys.readouterr().out) == 5
    assert main(["call", "YahooFinance/get_stock_chart", "symbol=AAPL", "range=5d"]) == 0
    assert json.loads(capsys.readouterr().out)["symbol"] == "AAPL"


def test_call_failures_exit_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "Test/add", "a=two"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: InvalidParams: Test/add: invalid arguments (a:")
    assert main(["call", "Nope/nothing"]) == 1
    assert "UnknownEndpoint" in capsys.readouterr().err
    assert main(["call", "Test/add", "oops"]) == 2
    assert "not key=value" in capsys.readouterr().err


@pytest.mark.usefixtures("clean_settings")
def test_call_remote(
    secured_server: ServerThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FUNC_SERVER_PORT", str(secured_server.port))
    monkeypatch.setenv("WORKSPACE_SERVER_TOKEN", TOKEN)
    reset_settings()
    assert main(["call", "--remote", "Test/echo", "text=hi", "times=2"]) == 0
    assert json.loads(capsys.readouterr().out) == {"text": "hi hi"}
    monkeypatch.delenv("FUNC_SERVER_PORT")
    reset_settings()
    assert main(["call", "--remote", "Test/add", "a=1"]) == 1
    assert "FUNC_SERVER_PORT is not set" in capsys.readouterr().err
    monkeypatch.setenv("FUNC_SERVER_PORT", "99999")
    reset_settings()
    assert main(["call", "--remote", "Test/add", "a=1"]) == 2
    assert "FUNC_SERVER_PORT" in capsys.readouterr().err


def test_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(rows) >= {"YahooFinance", "Twitter", "Booking"}
    assert all(row.rstrip().endswith("ok") for row in rows.values())


@pytest.mark.usefixtures("clean_settings")
def test_config_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKSPACE_SERVER_TOKEN", "very-secret-token")
    monkeypatch.setenv("WORKSPACE_TWITTER_API_KEY", "very-secret-key")
    monkeypatch.setenv("FUNC_SERVER_PORT", "8123")
    reset_settings()
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "very-secret" not in out
    shown = json.loads(out)
    assert shown["WORKSPACE_SERVER_TOKEN"] == "**********"
    assert shown["WORKSPACE_TWITTER_API_KEY"] == "**********"
    assert shown["FUNC_SERVER_PORT"] == 8123


@pytest.mark.slow
def test_serve_with_workers_shares_the_port_and_stops_on_sigterm(
    repo_root: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "WORKSPACE_SECRETS_DIR": str(tmp_path), "WORKSPACE_LOG_FORMAT": "json"}
    env.pop("WORKSPACE_SERVER_TOKEN", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "external_api",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--grace-period",
            "5",
            "--call-timeout",
            "5",
            "--max-concurrency",
            "8",
            "--load",
            "tests.server.functions",
        ],
        cwd=repo_root,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    events: list[str] = []
    try:
        while events.count("serving") < 2:  # both workers listen on the same port
            line = process.stderr.readline()
            assert line, f"a worker exited early: {events}"
            if line.startswith("{"):
                events.append(json.loads(line)["event"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez") as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=30)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    events += [json.loads(line)["event"] for line in rest.splitlines() if line.startswith("{")]
    assert process.returncode == 0
    assert events.count("serving") == 2
    assert events.count("stopped") == 2
