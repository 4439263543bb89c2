"""The simulator served over HTTP, as for the unit tests (one set of fixtures)."""
from tests.unit.conftest import engine, model, served  # noqa: F401 (pytest fixtures)
