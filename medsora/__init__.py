"""MedSora: medical video generation with spatio-temporal Mamba diffusion.

Importing the package is cheap and never needs a GPU or the optional CUDA kernels.
"""
__version__ = "0.1.0"
