"""The URL policy of ``visit`` and ``screenshot``: which URLs the shared browser may open.

Only the schemes in ``WORKSPACE_BROWSER_ALLOWED_SCHEMES`` (default ``http`` and
``https``) pass, so callers of the function server cannot make the browser read
``file:`` paths, ``chrome:`` pages, ``data:`` or ``javascript:`` URLs. When
``WORKSPACE_BROWSER_ALLOWED_HOSTS`` is set, the host must also match one of its entries
(exactly, or as a subdomain of a ``*.example.com`` entry).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from browser.settings import BrowserSettings
from external_api.errors import FieldError, InvalidParams

__all__ = ["check_url", "host_allowed"]


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Return whether ``host`` matches ``allowed_hosts`` (an empty tuple allows every host).

    An entry ``example.com`` matches only that host; ``*.example.com`` matches
    ``example.com`` and every subdomain of it. Matching ignores case.
    """
    if not allowed_hosts:
        return True
    host = host.lower().rstrip(".")
    for entry in allowed_hosts:
        if entry.startswith("*."):
            base = entry[2:]
            if host == base or host.endswith("." + base):
                return True
        elif host == entry:
            return True
    return False


def _refuse(url: str, reason: str) -> InvalidParams:
    return InvalidParams(
        f"refusing to open {url!r}: {reason}",
        field_errors=[FieldError(field="url", message=reason, type="url_refused")],
    )


def check_url(url: str, settings: BrowserSettings) -> str:
    """Return ``url`` stripped of surrounding whitespace if the policy allows opening it.

    Raises:
        InvalidParams: when the URL is malformed, its scheme is not allowed or its host is
            not on the allowlist; the message says which setting would allow it.
    """
    candidate = url.strip()
    try:
        parts = urlsplit(candidate)
        host = parts.hostname or ""
    except ValueError as error:
        raise _refuse(candidate, f"it is not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise _refuse(candidate, "it has no scheme; give an absolute URL such as https://host/")
    if scheme not in settings.allowed_schemes:
        allowed = ", ".join(settings.allowed_schemes) or "(none)"
        raise _refuse(
            candidate,
            f"scheme {scheme!r} is not allowed (allowed: {allowed}; "
            "set WORKSPACE_BROWSER_ALLOWED_SCHEMES to change this)",
        )
    if scheme in ("http", "https") and not host:
        raise _refuse(candidate, "it has no host")
    if not host_allowed(host, settings.allowed_hosts):
        raise _refuse(
            candidate,
            f"host {host!r} is not in WORKSPACE_BROWSER_ALLOWED_HOSTS "
            f"({', '.join(settings.allowed_hosts)})",
        )
    return candidate
