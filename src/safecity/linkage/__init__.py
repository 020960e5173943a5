"""Crime linkage (串并): the master person index on Splink (issue 6).

`person_index` trains, predicts and clusters; `comparisons` builds the Splink settings;
`idcard` validates 18-digit resident ID numbers; `datasets` loads the benchmark sets.
"""
