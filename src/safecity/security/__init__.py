"""Authentication, authorisation (roles × org scope), audit and redaction."""
