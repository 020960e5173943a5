"""Anti-telecom-fraud early warning (issue 9): intake, indicators, scoring, decisions."""
