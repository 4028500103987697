"""Frozen networks we load but never train: the ``Frozen`` wrapper and the LPIPS AlexNet builder."""
