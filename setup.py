"""MedSora: latent video diffusion with spatio-temporal Mamba for medical video."""
from setuptools import find_packages, setup

setup(
    name="medsora",
    version="0.1.0",
    description="Medical video generation: spatio-temporal Mamba diffusion, optical-flow alignment, "
    "frequency-compensated causal VAE",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # configs/ (at the repository root) is installed as package data under medsora/configs, so a
    # non-editable install ships the experiment/model/... files that medsora.config.config_dir() finds.
    packages=[*find_packages(include=["medsora", "medsora.*"]), "medsora.configs"],
    package_dir={"medsora.configs": "configs"},
    package_data={"medsora.configs": ["*/*.yaml", "*/*/*.yaml"], "medsora.reader_study": ["templates/*.html"]},
    include_package_data=True,
    # Floors are what the code needs, not what happened to be installed: torch.nn.utils.get_total_norm
    # (2.6), lightning's EMAWeightAveraging (2.6). The diffusers range is the one the CogVideoX VAE hooks
    # (medsora/vae/causal.py, private internals) are tested on: 0.35.2 and 0.42 (0.35.1 and older import a name
    # transformers 5 removed). tests/train, tests/vae and
    # tests/config pass with lightning 2.6.0, diffusers 0.35.2 and omegaconf 2.3.0 (see README, Tests).
    install_requires=[
        "torch>=2.6,<2.15",
        "torchvision>=0.21,<0.30",
        "lightning>=2.6,<2.7",
        "einops>=0.8,<0.9",
        "omegaconf>=2.3,<2.4",
        "pyyaml>=6",
        "diffusers>=0.35.2,<0.43",
        "transformers>=4.44,<6",
        "safetensors>=0.4",
        "tensorboard>=2.16",
        "torchmetrics>=1.4,<2.0",
        "torch-fidelity>=0.3",
        "av>=14",
        "pydicom>=3.0",
        "nibabel>=5.2",
        "scikit-image>=0.23",
        "tifffile>=2022.8",  # multi-page TIFF stacks (also a dependency of scikit-image)
        "scipy>=1.11",
        "numpy>=1.26",
        "matplotlib>=3.8",
        "pillow>=10",
        "tqdm>=4.66",
        "fastapi>=0.110",  # medsora.reader_study: the reader's web page
        "uvicorn>=0.29",
        "jinja2>=3.1",
        "python-multipart>=0.0.9",
    ],
    extras_require={
        # httpx (Starlette's TestClient) and playwright (drives the system's Chromium): reader-study tests;
        # pytest-random-order: `pytest --random-order` shuffles the suite; off unless asked, so `pytest` keeps file order
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "pytest-random-order>=1.1", "nbclient>=0.10", "nbformat>=5.10",
                "ipykernel>=6.29", "httpx>=0.27", "playwright>=1.44"],
        "kernels": ["mamba-ssm>=2.2", "causal-conv1d>=1.4"],
        "iqa": ["pyiqa>=0.1.13"],  # MUSIQ imaging quality in medsora.evaluate
    },
)
