"""Neighbour disputes (issue 4, item 9): tracked from report to resolution, with follow-ups,
a mediation workflow, an overdue follow-up reminder and a station dashboard."""
