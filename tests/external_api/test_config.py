"""Settings: env vars, .env, secrets directory, profiles, per-source variables, masking."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from external_api.config import (
    ConfigurationError,
    Settings,
    get_settings,
    reset_settings,
    source_env_key,
)

VARIABLES = (
    "WORKSPACE_ENV",
    "WORKSPACE_SECRETS_DIR",
    "WORKSPACE_REQUIRED_SECRETS",
    "WORKSPACE_SERVER_TOKEN",
    "WORKSPACE_LOG_LEVEL",
    "WORKSPACE_LOG_FORMAT",
    "FUNC_SERVER_PORT",
    "LLM_GATEWAY_BASE_URL",
    "AGENT_NAME",
    "BEDROCK_PROJECT",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No workspace variable from the shell, no .env from the checkout, no /run/secrets."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("WORKSPACE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKSPACE_SECRETS_DIR", str(tmp_path / "no-secrets"))
    reset_settings()
    yield
    reset_settings()


def test_defaults() -> None:
    settings = get_settings()
    assert settings.env == "dev"
    assert settings.func_server_port is None
    assert settings.server_token is None
    assert settings.llm_gateway_base_url is None
    assert settings.workspace_root == Path("workspace")
    assert settings.log_renderer == "console"
    assert settings.source("YahooFinance").base_url is None
    assert settings.source("Twitter").timeout == 10.0


def test_get_settings_is_cached_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("AGENT_NAME", "analyst")
    assert get_settings().agent_name is None
    reset_settings()
    assert get_settings().agent_name == "analyst"


def test_seed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNC_SERVER_PORT", "8123")
    monkeypatch.setenv("LLM_GATEWAY_BASE_URL", "http://gateway.internal:9000/")
    monkeypatch.setenv("AGENT_NAME", "analyst")
    monkeypatch.setenv("BEDROCK_PROJECT", "proj-1")
    settings = Settings()
    assert settings.func_server_port == 8123
    assert settings.llm_gateway_base_url == "http://gateway.internal:9000"
    assert settings.agent_name == "analyst"
    assert settings.workspace_root == Path("/workspace")


@pytest.mark.parametrize("value", ["0", "65536", "http", "-1"])
def test_bad_port_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FUNC_SERVER_PORT", value)
    with pytest.raises(ConfigurationError, match="FUNC_SERVER_PORT must be an integer port"):
        get_settings()


def test_per_source_variables_including_third_party(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_YAHOO_FINANCE_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("WORKSPACE_YAHOO_FINANCE_TIMEOUT", "2.5")
    monkeypatch.setenv("WORKSPACE_TWITTER_API_KEY", "x-token-value")
    monkeypatch.setenv("workspace_weather_api_key", "weather-key")
    settings = Settings()
    assert settings.source("YahooFinance").base_url == "http://127.0.0.1:9"
    assert settings.source("YAHOO_FINANCE").timeout == 2.5
    secret = settings.source("Twitter").api_key
    assert secret is not None
    assert secret.get_secret_value() == "x-token-value"
    weather = settings.secret("WORKSPACE_WEATHER_API_KEY")
    assert weather is not None
    assert weather.get_secret_value() == "weather-key"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WORKSPACE_BOOKING_TIMEOUT", "-1", "WORKSPACE_BOOKING_TIMEOUT: Input should be greater"),
        ("WORKSPACE_BOOKING_BASE_URL", "ftp://x", "WORKSPACE_BOOKING_BASE_URL: expected an http"),
        ("LLM_GATEWAY_BASE_URL", "gateway", "expected an http(s) URL"),
        ("WORKSPACE_LOG_LEVEL", "LOUD", "WORKSPACE_LOG_LEVEL must be one of"),
        ("WORKSPACE_ENV", "qa", "WORKSPACE_ENV"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    assert message in str(caught.value)


def test_dotenv_file_is_read_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "AGENT_NAME=from-dotenv\nFUNC_SERVER_PORT=9001\n"
        "WORKSPACE_BOOKING_API_KEY=dotenv-key\nWORKSPACE_BOOKING_TIMEOUT=3\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("FUNC_SERVER_PORT", "9002")
    settings = Settings()
    assert settings.agent_name == "from-dotenv"
    assert settings.func_server_port == 9002
    key = settings.source("Booking").api_key
    assert key is not None
    assert key.get_secret_value() == "dotenv-key"
    assert settings.source("Booking").timeout == 3.0


def test_secrets_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "workspace_server_token").write_text("tok-from-file\n", encoding="utf-8")
    (secrets / "WORKSPACE_TWITTER_API_KEY").write_text("x-from-file\n", encoding="utf-8")
    (secrets / "WORKSPACE_BOOKING_API_KEY").write_text("file-key", encoding="utf-8")
    (secrets / "unrelated").write_text("ignored", encoding="utf-8")
    monkeypatch.setenv("WORKSPACE_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("WORKSPACE_BOOKING_API_KEY", "env-key")
    settings = Settings()
    assert settings.secrets_dir == secrets
    assert settings.server_token is not None
    assert settings.server_token.get_secret_value() == "tok-from-file"
    assert settings.secret("WORKSPACE_TWITTER_API_KEY") is not None
    booking = settings.secret("WORKSPACE_BOOKING_API_KEY")
    assert booking is not None
    assert booking.get_secret_value() == "env-key"  # the environment wins over files


def test_prod_refuses_to_start_without_required_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_ENV", "prod")
    with pytest.raises(ConfigurationError, match=r"needs the secret.*WORKSPACE_SERVER_TOKEN"):
        get_settings()
    monkeypatch.setenv("WORKSPACE_SERVER_TOKEN", "s3cr3t-token")
    reset_settings()
    settings = get_settings()
    assert settings.log_renderer == "json"
    assert settings.effective_required_secrets == ("WORKSPACE_SERVER_TOKEN",)


def test_required_secrets_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_ENV", "prod")
    monkeypatch.setenv("WORKSPACE_REQUIRED_SECRETS", "workspace_twitter_api_key, ")
    with pytest.raises(ConfigurationError, match="WORKSPACE_TWITTER_API_KEY"):
        get_settings()
    monkeypatch.setenv("WORKSPACE_REQUIRED_SECRETS", "NOT_A_SECRET")
    reset_settings()
    with pytest.raises(ValueError, match="is not a secret setting"):
        get_settings()


def test_staging_logs_json_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_ENV", "staging")
    assert Settings().log_renderer == "json"
    monkeypatch.setenv("WORKSPACE_LOG_FORMAT", "console")
    assert Settings().log_renderer == "console"


def test_public_dict_masks_secrets_and_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_SERVER_TOKEN", "server-secret-123")
    monkeypatch.setenv("WORKSPACE_TWITTER_API_KEY", "twitter-secret-456")
    monkeypatch.setenv("WORKSPACE_ACME_BASE_URL", "https://acme.example")
    settings = Settings()
    public = settings.public_dict()
    text = json.dumps(public)
    assert "server-secret-123" not in text
    assert "twitter-secret-456" not in text
    assert "server-secret-123" not in repr(settings)
    assert public["WORKSPACE_SERVER_TOKEN"] == "**********"
    assert public["WORKSPACE_TWITTER_API_KEY"] == "**********"
    assert public["WORKSPACE_BOOKING_API_KEY"] is None
    assert public["WORKSPACE_YAHOO_FINANCE_TIMEOUT"] == 10.0
    assert public["WORKSPACE_ACME_BASE_URL"] == "https://acme.example"
    assert settings.masked() == public


def test_configure_logging_follows_the_profile(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import structlog

    monkeypatch.setenv("WORKSPACE_ENV", "staging")
    monkeypatch.setenv("WORKSPACE_LOG_LEVEL", "warning")
    try:
        Settings().configure_logging()
        log = structlog.get_logger("test")
        log.info("hidden")
        log.warning("shown", answer=42)
        line = capsys.readouterr().err.strip()
        assert json.loads(line)["answer"] == 42
        assert "hidden" not in line
    finally:
        structlog.reset_defaults()


@pytest.mark.parametrize(
    ("name", "key"),
    [("YahooFinance", "YAHOO_FINANCE"), ("Twitter", "TWITTER"), ("my-source", "MY_SOURCE")],
)
def test_source_env_key(name: str, key: str) -> None:
    assert source_env_key(name) == key


@pytest.mark.parametrize("name", ["--", "Browser"])
def test_source_env_key_rejects_empty_and_reserved(name: str) -> None:
    with pytest.raises(ValueError, match="not a usable data source name"):
        source_env_key(name)


def test_other_components_variables_are_not_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_BROWSER_TIMEOUT", "not-a-number-for-us")
    settings = Settings()
    assert "BROWSER" not in settings.sources
    assert "WORKSPACE_BROWSER_TIMEOUT" not in settings.public_dict()
