"""Optional integrations with other frameworks; each imports its framework lazily.

* :mod:`emotionkit.integrations.ray`: run the recognizer over a Ray Data dataset
  (``pip install ".[ray]"`` in a checkout of emotionkit).
"""
