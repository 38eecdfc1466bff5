"""Secrets kept out of anything printed: a URL's password becomes ``***``.

It lives with the configuration because ``check-config`` prints the ledger URL and every
layer may log one; the ledger uses the same function for its own messages.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs, status and errors)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable ledger url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "")
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))
