"""The city simulator (``safecity sim``): synthetic sensor traffic with ground truth."""
