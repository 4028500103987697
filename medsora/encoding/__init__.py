"""The encode stage's library parts (``python -m medsora.encode`` is its command line).

* :mod:`~medsora.encoding.fingerprint` — ``run_fingerprint(cfg)``: what a cache for a run must be made from.
"""
