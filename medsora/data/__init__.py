"""Medical video data: sources, Bora preprocessing, manifests, the demo set, the DataModule.

* :func:`medsora.data.sources.read_video` — any supported source -> uint8 T×H×W×3 frames + meta
  (video files via PyAV, frame folders, DICOM cine/series via pydicom, NIfTI via nibabel);
* :func:`medsora.data.manifest.load_entries` — the videos of a data folder (manifest or scan);
* :mod:`medsora.data.clips`, :mod:`medsora.data.transforms` — Bora's clip sampling
  (fixed or adaptive interval, padding) and short-side resize + crop to [-1, 1];
* :class:`medsora.data.datamodule.VideoDataModule` — batches of B×3×F×H×W clips with captions
  and modalities; bad files skipped and counted;
* :func:`medsora.data.demo.ensure_demo` — the embedded demo set (``data.root: demo``);
* ``python -m medsora.data check ROOT`` — scan a data set and report unreadable files.

This package's ``__init__`` imports nothing heavy: the config schema imports
``medsora.data.schema`` on every start-up.
"""
