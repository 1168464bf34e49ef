"""Event fixtures: the lifecycle suite's apps on the backend under test."""

from tests.lifecycle.conftest import app_factory

__all__ = ["app_factory"]
