"""Sharing trained models in diffusers format: ``python -m medsora.export``.

* :mod:`~medsora.export.components` — ``MedSoraTransformer``, ``MedSoraVAE``, ``MedSoraConditionEncoder``
  (diffusers ``ModelMixin`` + ``ConfigMixin``; safetensors only);
* :mod:`~medsora.export.writer` — ``export_checkpoint(ckpt, out)`` (folder layout, atomic publish);
* :mod:`~medsora.export.model_card` — the ``README.md`` written beside the weights.

The pipeline that loads a folder is :class:`medsora.pipeline.MedSoraPipeline`.
"""
