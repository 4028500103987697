"""Ablation sweeps: a sweep file names a base experiment and a list or grid of overrides.

``spec`` parses and validates sweep files, ``runner`` trains the variants,
``results`` collects their logs into a table and a plot.
"""
