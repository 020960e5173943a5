"""Security test fixtures (authentication and users: see auth_support.py)."""

from tests.security.auth_support import make_person

__all__ = ["make_person"]
