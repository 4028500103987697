"""Evaluation runs: protocols, the metric passes over the sets with bootstrap intervals, downstream utility.

``python -m medsora.evaluate`` is the command line; the metrics themselves are in :mod:`medsora.metrics`.
"""
