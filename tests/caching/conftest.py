"""Caching tests reuse the auth fixtures: in-process apps with htpasswd users and policies."""

from tests.auth.conftest import app_factory, htpasswd_file

__all__ = ["app_factory", "htpasswd_file"]
