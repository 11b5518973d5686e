"""The provider's environment variables, read in this one place.

``INWORLD_API_KEY`` (else a ``.env`` file's, when python-dotenv is installed, as the "all" extra
does) and ``INWORLD_BASE_URL``.
"""

from __future__ import annotations

import os

API_KEY_ENV = "INWORLD_API_KEY"
BASE_URL_ENV = "INWORLD_BASE_URL"


def key_from_env() -> str:
    """``INWORLD_API_KEY`` from the environment, else from a ``.env`` file, else ""."""
    key = os.environ.get(API_KEY_ENV, "")
    if key:
        return key
    try:
        from dotenv import dotenv_values
    except ImportError:
        return ""
    return dotenv_values().get(API_KEY_ENV) or ""


def base_url_from_env() -> str:
    """``INWORLD_BASE_URL``, or "" when it is not set."""
    return os.environ.get(BASE_URL_ENV, "")
