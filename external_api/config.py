"""Settings of ``external_api``: the one settings object, read from the environment.

Values come, highest priority first, from keyword arguments, environment variables,
a ``.env`` file in the working directory, and files in the secrets directory
(``WORKSPACE_SECRETS_DIR``, default ``/run/secrets``; a file named like the variable,
any case, holds its value — how Docker and Kubernetes mount secrets).

``WORKSPACE_ENV`` picks a profile: ``dev`` (console logs), ``staging`` and ``prod``
(JSON logs); ``prod`` refuses to start while a secret named in
``WORKSPACE_REQUIRED_SECRETS`` (default there: ``WORKSPACE_SERVER_TOKEN``) is missing.

Every data source ``<Source>`` gets ``WORKSPACE_<SOURCE>_BASE_URL``,
``WORKSPACE_<SOURCE>_API_KEY`` and ``WORKSPACE_<SOURCE>_TIMEOUT``, where ``<SOURCE>``
is the source name in upper snake case (``YahooFinance`` → ``YAHOO_FINANCE``); the
lookup is generic, so third-party sources get the same variables. Secrets are
``SecretStr`` and print as ``**********``. ``.env.example`` documents every variable.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic import model_validator as _model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from external_api.errors import ConfigurationError

__all__ = [
    "BUILTIN_SOURCES",
    "ConfigurationError",
    "Settings",
    "SourceSettings",
    "get_settings",
    "reset_settings",
    "source_env_key",
]

BUILTIN_SOURCES = ("YahooFinance", "Twitter", "Booking")
"""The data sources shipped in this package (listed by :meth:`Settings.public_dict`)."""

DEFAULT_SECRETS_DIR = Path("/run/secrets")
DEFAULT_SOURCE_TIMEOUT = 10.0
MASK = "**********"

_SOURCE_VARIABLE = re.compile(
    r"^WORKSPACE_([A-Z0-9_]+?)_(BASE_URL|API_KEY|TIMEOUT)$", re.IGNORECASE
)
# WORKSPACE_<NAME>_* prefixes owned by other components, never data sources.
RESERVED_PREFIXES = frozenset({"BROWSER", "SERVER", "LOG", "SECRETS", "REQUIRED"})
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def source_env_key(source_name: str) -> str:
    """Return the ``<SOURCE>`` part of a source's variables: ``YahooFinance`` → ``YAHOO_FINANCE``.

    Names already in upper snake case are returned unchanged.
    """
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", source_name.strip())
    key = re.sub(r"[^A-Za-z0-9]+", "_", snake).strip("_").upper()
    if not key or key in RESERVED_PREFIXES:
        raise ValueError(
            f"{source_name!r} is not a usable data source name (empty or reserved: "
            f"{', '.join(sorted(RESERVED_PREFIXES))})."
        )
    return key


class SourceSettings(BaseModel):
    """Connection settings of one data source (``WORKSPACE_<SOURCE>_*``).

    Attributes:
        base_url: Upstream base URL; ``None`` means the source's documented default.
        api_key: The credential, if the source needs one.
        timeout: Overall deadline of one call in seconds, retries included.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout: float = Field(DEFAULT_SOURCE_TIMEOUT, gt=0, le=600)

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _check_http_url(value)


def _check_http_url(value: str | None) -> str | None:
    if value is None:
        return None
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"expected an http(s) URL such as https://example.com, got {value!r}")
    return value.rstrip("/")


class _SourceVariables(PydanticBaseSettingsSource):
    """Collects every ``WORKSPACE_<SOURCE>_{BASE_URL,API_KEY,TIMEOUT}`` into ``sources``."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        dotenv: Mapping[str, str | None],
        secrets_dir: Path | None,
    ) -> None:
        super().__init__(settings_cls)
        self._dotenv = dotenv
        self._secrets_dir = secrets_dir

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Not used: this source fills the ``sources`` mapping as a whole in ``__call__``."""
        return None, field_name, False

    def _layers(self) -> list[Mapping[str, str | None]]:
        secrets: dict[str, str] = {}
        if self._secrets_dir is not None:
            for path in sorted(self._secrets_dir.iterdir()):
                if path.is_file() and _SOURCE_VARIABLE.match(path.name):
                    secrets[path.name] = path.read_text(encoding="utf-8").strip()
        return [secrets, self._dotenv, os.environ]  # lowest priority first

    def __call__(self) -> dict[str, Any]:
        """Return ``{"sources": {SOURCE: {base_url, api_key, timeout}}}`` for what is set."""
        sources: dict[str, dict[str, str]] = {}
        for layer in self._layers():
            for name, value in layer.items():
                match = _SOURCE_VARIABLE.match(name)
                if match and value and match.group(1).upper() not in RESERVED_PREFIXES:
                    source, attribute = match.group(1).upper(), match.group(2).lower()
                    sources.setdefault(source, {})[attribute] = value
        return {"sources": sources} if sources else {}


def _resolve_secrets_dir(dotenv: Mapping[str, str | None]) -> Path:
    raw = os.environ.get("WORKSPACE_SECRETS_DIR") or dotenv.get("workspace_secrets_dir")
    return Path(raw).expanduser() if raw else DEFAULT_SECRETS_DIR


class Settings(BaseSettings):
    """The effective settings of ``external_api`` (build with :func:`get_settings`).

    Attributes:
        env: The profile, ``WORKSPACE_ENV``: ``dev`` | ``staging`` | ``prod``.
        secrets_dir: ``WORKSPACE_SECRETS_DIR``: directory of mounted secret files.
        llm_gateway_base_url: ``LLM_GATEWAY_BASE_URL``: when set, upstream calls go
            through this gateway with ``X-Original-Host: <upstream host>``.
        agent_name: ``AGENT_NAME``: sent as the caller name.
        bedrock_project: ``BEDROCK_PROJECT``: when set, the workspace root is ``/workspace``.
        func_server_port: ``FUNC_SERVER_PORT``: the function server's port (1..65535).
        server_token: ``WORKSPACE_SERVER_TOKEN``: bearer token the function server requires.
        log_level: ``WORKSPACE_LOG_LEVEL``: DEBUG, INFO, WARNING, ERROR or CRITICAL.
        log_format: ``WORKSPACE_LOG_FORMAT``: ``json`` or ``console``; default by profile.
        required_secrets: ``WORKSPACE_REQUIRED_SECRETS``: comma-separated secret variables
            that must be set in ``prod`` (default there: ``WORKSPACE_SERVER_TOKEN``).
        sources: Per-source settings keyed by ``<SOURCE>``; read with :meth:`source`.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
        env_ignore_empty=True,
    )

    env: Literal["dev", "staging", "prod"] = Field("dev", validation_alias="WORKSPACE_ENV")
    secrets_dir: Path = Field(DEFAULT_SECRETS_DIR, validation_alias="WORKSPACE_SECRETS_DIR")
    llm_gateway_base_url: str | None = Field(None, validation_alias="LLM_GATEWAY_BASE_URL")
    agent_name: str | None = Field(None, validation_alias="AGENT_NAME")
    bedrock_project: str | None = Field(None, validation_alias="BEDROCK_PROJECT")
    func_server_port: int | None = Field(None, validation_alias="FUNC_SERVER_PORT")
    server_token: SecretStr | None = Field(None, validation_alias="WORKSPACE_SERVER_TOKEN")
    log_level: str = Field("INFO", validation_alias="WORKSPACE_LOG_LEVEL")
    log_format: Literal["json", "console"] | None = Field(
        None, validation_alias="WORKSPACE_LOG_FORMAT"
    )
    required_secrets: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        None, validation_alias="WORKSPACE_REQUIRED_SECRETS"
    )
    sources: dict[str, SourceSettings] = Field(
        default_factory=dict, validation_alias="WORKSPACE_SOURCES"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read init kwargs, env, ``.env``, the secrets dir, then the per-source variables."""
        dotenv = (
            dotenv_settings.env_vars if isinstance(dotenv_settings, DotEnvSettingsSource) else {}
        )
        secrets_dir = _resolve_secrets_dir(dotenv)
        found_dir = secrets_dir if secrets_dir.is_dir() else None
        secrets = SecretsSettingsSource(settings_cls, secrets_dir=found_dir, case_sensitive=False)
        per_source = _SourceVariables(settings_cls, dotenv, found_dir)
        return init_settings, env_settings, dotenv_settings, secrets, per_source

    @field_validator("func_server_port", mode="before")
    @classmethod
    def _check_port(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            port = int(str(value).strip())
        except ValueError:
            port = 0
        if not 1 <= port <= 65535:
            raise ValueError(
                f"FUNC_SERVER_PORT must be an integer port between 1 and 65535, got {value!r}"
            )
        return port

    @field_validator("llm_gateway_base_url")
    @classmethod
    def _check_gateway(cls, value: str | None) -> str | None:
        return _check_http_url(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _check_level(cls, value: Any) -> str:
        level = str(value).strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"WORKSPACE_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        return level

    @field_validator("required_secrets", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip().upper() for part in value.split(",") if part.strip())
        return value

    @field_validator("sources", mode="before")
    @classmethod
    def _normalise_keys(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {source_env_key(str(key)): item for key, item in value.items()}
        return value

    @_model_validator(mode="after")
    def _check_profile(self) -> Settings:
        if self.env != "prod":
            return self
        missing = [name for name in self.effective_required_secrets if not self.secret(name)]
        if missing:
            raise ValueError(
                f"WORKSPACE_ENV=prod needs the secret(s) {', '.join(missing)}: set them in the "
                f"environment or as files in the secrets directory ({self.secrets_dir}), "
                "or list the secrets prod requires in WORKSPACE_REQUIRED_SECRETS."
            )
        return self

    @property
    def effective_required_secrets(self) -> tuple[str, ...]:
        """The secret variables the profile requires (only ``prod`` enforces them)."""
        if self.required_secrets is not None:
            return self.required_secrets
        return ("WORKSPACE_SERVER_TOKEN",) if self.env == "prod" else ()

    @property
    def workspace_root(self) -> Path:
        """``/workspace`` when ``BEDROCK_PROJECT`` is set, else ``./workspace``."""
        return Path("/workspace") if self.bedrock_project else Path("workspace")

    @property
    def log_renderer(self) -> Literal["json", "console"]:
        """``WORKSPACE_LOG_FORMAT`` if set, else ``console`` in dev and ``json`` otherwise."""
        if self.log_format is not None:
            return self.log_format
        return "console" if self.env == "dev" else "json"

    def source(self, name: str) -> SourceSettings:
        """Return the settings of source ``name`` (``"YahooFinance"`` or ``"YAHOO_FINANCE"``)."""
        return self.sources.get(source_env_key(name), SourceSettings())

    def secret(self, variable: str) -> SecretStr | None:
        """Return the secret held by env variable ``variable`` (e.g. ``WORKSPACE_TWITTER_API_KEY``).

        Raises:
            ValueError: when ``variable`` names no secret setting.
        """
        name = variable.strip().upper()
        if name == "WORKSPACE_SERVER_TOKEN":
            return self.server_token
        match = _SOURCE_VARIABLE.match(name)
        if match and match.group(2).upper() == "API_KEY":
            return self.source(match.group(1)).api_key
        raise ValueError(
            f"{variable!r} is not a secret setting: use WORKSPACE_SERVER_TOKEN or "
            "WORKSPACE_<SOURCE>_API_KEY."
        )

    def configure_logging(self) -> None:
        """Configure structlog for this profile (:attr:`log_renderer` at :attr:`log_level`)."""
        from external_api.observability import configure_logging

        configure_logging(self.log_renderer, logging.getLevelName(self.log_level))

    def public_dict(self) -> dict[str, Any]:
        """Return the effective settings by variable name, secrets masked as ``**********``.

        Every built-in source is listed (``None`` = the source's default); configured
        third-party sources too. The result is JSON-compatible.
        """

        def masked(secret: SecretStr | None) -> str | None:
            return MASK if secret is not None else None

        result: dict[str, Any] = {
            "WORKSPACE_ENV": self.env,
            "WORKSPACE_SECRETS_DIR": str(self.secrets_dir),
            "WORKSPACE_LOG_LEVEL": self.log_level,
            "WORKSPACE_LOG_FORMAT": self.log_renderer,
            "WORKSPACE_REQUIRED_SECRETS": ",".join(self.effective_required_secrets),
            "WORKSPACE_SERVER_TOKEN": masked(self.server_token),
            "FUNC_SERVER_PORT": self.func_server_port,
            "LLM_GATEWAY_BASE_URL": self.llm_gateway_base_url,
            "AGENT_NAME": self.agent_name,
            "BEDROCK_PROJECT": self.bedrock_project,
            "workspace_root": str(self.workspace_root),
        }
        keys = [source_env_key(name) for name in BUILTIN_SOURCES]
        keys += sorted(key for key in self.sources if key not in keys)
        for key in keys:
            source = self.source(key)
            result[f"WORKSPACE_{key}_BASE_URL"] = source.base_url
            result[f"WORKSPACE_{key}_API_KEY"] = masked(source.api_key)
            result[f"WORKSPACE_{key}_TIMEOUT"] = source.timeout
        return result

    def masked(self) -> dict[str, Any]:
        """Return :meth:`public_dict` (the name the ``workspace config`` command uses)."""
        return self.public_dict()


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False):
        loc = [str(part) for part in item["loc"]]
        if len(loc) >= 3 and loc[0] in ("WORKSPACE_SOURCES", "sources"):
            loc = [f"WORKSPACE_{loc[1]}_{loc[2].upper()}", *loc[3:]]
        where = ".".join(loc) or "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "invalid workspace settings (fix these variables):\n" + "\n".join(lines)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process's settings, read once and cached (see :func:`reset_settings`).

    Raises:
        ConfigurationError: naming each invalid variable and what to set.
    """
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigurationError(_describe(error)) from None


def reset_settings() -> None:
    """Forget the cached settings; the next :func:`get_settings` reads the environment again."""
    get_settings.cache_clear()
