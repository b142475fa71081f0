"""The store's two engines for the meters' tests that take ``engine``."""

from tests.store.conftest import engine, postgres_admin  # noqa: F401
