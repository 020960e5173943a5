"""Organisations: city → district → station → community police office, and departments."""
