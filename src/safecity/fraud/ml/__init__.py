"""Fraud models: scam-number, phishing-site and scam-SMS classifiers, versioned on disk.

- :mod:`.number_model`, :mod:`.site_model` (LightGBM over named features, shared core in
  :mod:`.tabular`) and :mod:`.text_model` (TF-IDF + logistic regression, any language);
  each has a ``train_*`` function taking arrays and a seed, ``predict_proba`` and
  ``reason_codes(x, top=3)``;
- :mod:`.graph`: neighbour features over a graph between numbers, label-leak safe;
- :mod:`.metrics`: recall at a false-positive budget, G-mean, threshold choosers;
- :mod:`.store`: versioned artifact directories (payload + metadata.json with sha256).
"""
