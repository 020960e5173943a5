"""Quick handling of minor accidents with insurer claims (issue 11)."""
