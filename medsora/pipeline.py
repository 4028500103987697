"""``MedSoraPipeline``: sampling from an exported folder with the diffusers API.

    from medsora.pipeline import MedSoraPipeline
    pipe = MedSoraPipeline.from_pretrained("exported/")            # safetensors + JSON only
    out = pipe(modality="ultrasound", num_videos=2, generator=torch.Generator().manual_seed(0))
    out.frames                                                      # N×F×H×W×3 float in [0, 1]

The pipeline samples through the very code ``python -m medsora.sample`` uses
(:class:`medsora.training.sampling_mixin.SamplingMixin.generate`, via :class:`ExportedModel`), so the
same seed, sampler, steps and condition give the same videos from a Lightning checkpoint and from
its export. Sample i is a function of its own generator: pass one ``torch.Generator`` per video
(or one for a single video) to reproduce ``--seed``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Union

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from medsora.pretrained.frozen import Frozen
from medsora.training.sampling_mixin import SamplingMixin

__all__ = ["ExportedModel", "MedSoraPipeline", "MedSoraPipelineOutput", "SAMPLER_OF_SCHEDULER"]

SAMPLER_OF_SCHEDULER = {
    "DDPMScheduler": "ddpm",
    "DDIMScheduler": "ddim",
    "DPMSolverMultistepScheduler": "dpmpp",
    "FlowMatchEulerDiscreteScheduler": "euler",
    "FlowMatchHeunDiscreteScheduler": "heun",
}
"""Which MedSora sampler a diffusers scheduler class stands for (swap ``pipe.scheduler`` to change it)."""


class ExportedModel(SamplingMixin):
    """The sampling side of a ``DiffusionModule``, assembled from exported components.

    Provides what :class:`SamplingMixin` relies on (``backbone``, ``cond_encoder``, ``in_channels``,
    ``latent_grid()``, ``scaling_factor``, ``can_decode``, ``_vae``, ``cfg``, ``device``).
    """

    can_decode = True

    def __init__(self, transformer, vae, condition_encoder=None, num_frames: Optional[int] = None):
        from medsora.training.diffusion_module import run_config

        self.transformer = transformer
        self.backbone = transformer.backbone
        self.cond_encoder = condition_encoder.encoder if condition_encoder is not None else None
        self.cfg = run_config(dict(transformer.config.run))
        self.in_channels = int(self.cfg.vae.latent_channels)
        self.scaling_factor = float(vae.config.scaling_factor)
        self._vae = Frozen(vae.vae)
        t, h, w = (int(v) for v in transformer.config.latent_grid)
        from medsora.vae.select import latent_frames  # the run's VAE decides the frame stride

        self._grid = (t if num_frames is None else latent_frames(self.cfg.vae, int(num_frames)), h, w)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def latent_grid(self) -> tuple[int, int, int]:
        return self._grid

    def to(self, device) -> "ExportedModel":
        """Move the networks to ``device`` (as ``LightningModule.to``), returning self."""
        for part in (self.transformer, self.cond_encoder, self._vae.module):
            if part is not None:
                part.to(device)
        return self


@dataclass
class MedSoraPipelineOutput(BaseOutput):
    """``frames``: videos as ``output_type`` asked (np: N×F×H×W×3 in [0, 1]; pt: N×F×3×H×W; pil: lists of images;
    latent: N×C×T×h×w scaled latents); ``labels``: the condition each video was generated from."""

    frames: Any
    labels: Optional[List[str]] = None


class MedSoraPipeline(DiffusionPipeline):
    """Text/modality-conditioned (or unconditional) latent video diffusion with a MedSora backbone.

    Components: ``transformer`` (:class:`~medsora.export.components.MedSoraTransformer`), ``vae``
    (:class:`~medsora.export.components.MedSoraVAE`), ``scheduler`` (a diffusers scheduler of the
    run's objective) and the optional ``condition_encoder``
    (:class:`~medsora.export.components.MedSoraConditionEncoder`).
    """

    model_cpu_offload_seq = "condition_encoder->transformer->vae"
    _optional_components = ["condition_encoder"]

    def __init__(self, transformer, vae, scheduler, condition_encoder=None):
        super().__init__()
        self.register_modules(transformer=transformer, vae=vae, scheduler=scheduler, condition_encoder=condition_encoder)

    # --------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, torch_dtype: Optional[torch.dtype] = None,
                        text_encoder_path: Optional[str] = None, **kwargs) -> "MedSoraPipeline":
        """Load an exported folder (local only; nothing is downloaded).

        Each component is loaded on its own so that a missing or mismatched one is named.

        Args:
            torch_dtype: cast the models to this dtype after loading.
            text_encoder_path: where the T5 named by the condition encoder lives on this machine.
        Raises:
            FileNotFoundError: not a folder with ``model_index.json``.
            ValueError: a component is missing, of an unknown class, or does not load (names it).
        """
        if kwargs:
            raise TypeError(f"MedSoraPipeline.from_pretrained: unsupported arguments {sorted(kwargs)} "
                            "(supported: torch_dtype, text_encoder_path)")
        import importlib
        import json
        from pathlib import Path

        folder = Path(pretrained_model_name_or_path).expanduser()
        index_file = folder / "model_index.json"
        if not index_file.is_file():
            raise FileNotFoundError(f"{folder}: no model_index.json — not an exported MedSora model "
                                    "(write one with python -m medsora.export --ckpt RUN/last.ckpt --out DIR)")
        index = json.loads(index_file.read_text(encoding="utf-8"))
        parts: dict = {}
        for name in ("transformer", "vae", "scheduler", "condition_encoder"):
            entry = index.get(name)
            if entry is None or entry == [None, None]:
                if name in cls._optional_components:
                    parts[name] = None
                    continue
                raise ValueError(f"{folder}: model_index.json lists no '{name}' component")
            library, class_name = entry
            if not (folder / name).is_dir():
                raise ValueError(f"{folder}: component '{name}/' ({class_name}) is missing")
            try:
                owner = importlib.import_module(library if library != "diffusers" else "diffusers")
                klass = getattr(owner, class_name)
            except (ImportError, AttributeError) as err:
                raise ValueError(f"{folder}: component '{name}' names an unknown class {library}.{class_name} ({err})") from None
            extra = {"text_encoder_path": text_encoder_path} if name == "condition_encoder" and text_encoder_path else {}
            try:
                if name == "scheduler":
                    parts[name] = klass.from_pretrained(folder, subfolder=name)
                else:
                    parts[name] = klass.from_pretrained(folder / name, low_cpu_mem_usage=False, **extra).eval()
            except Exception as err:  # noqa: BLE001 - any failure is reported with the component's name
                raise ValueError(f"{folder}: component '{name}' ({class_name}) does not load: "
                                 f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
        pipe = cls(**parts)
        if torch_dtype is not None:
            pipe.to(dtype=torch_dtype)
        return pipe

    # ---------------------------------------------------------------- checks
    def _sampler(self) -> str:
        name = type(self.scheduler).__name__
        if name not in SAMPLER_OF_SCHEDULER:
            raise ValueError(f"scheduler {name} is not one MedSora samples with; use one of {sorted(SAMPLER_OF_SCHEDULER)}")
        return SAMPLER_OF_SCHEDULER[name]

    def _check(self, prompt, modality, attributes, image, num_frames) -> None:
        cond = self.condition_encoder
        conditioned_on = "nothing (an unconditional model)" if cond is None else ", ".join(
            part for part, on in (("modality", cond.encoder.modality is not None),
                                  ("text", cond.encoder.text_encoder is not None)) if on)
        if prompt is not None and (cond is None or cond.encoder.text_encoder is None):
            raise ValueError(f"prompt=: this model is not text-conditioned; it is conditioned on {conditioned_on}")
        if modality is not None and (cond is None or cond.encoder.modality is None):
            raise ValueError(f"modality=: this model has no modality conditioning; it is conditioned on {conditioned_on}")
        specs = getattr(cond.encoder, "attribute_specs", ()) if cond is not None else ()
        if attributes and not specs:
            raise ValueError(f"attributes=: this model has no attribute conditioning; it is conditioned on {conditioned_on}")
        first_frame = bool((self.transformer.config.run.get("cond") or {}).get("first_frame"))
        if image is not None and not first_frame:
            raise ValueError(f"image=: this model has no image (first-frame) conditioning; it is conditioned on {conditioned_on}")
        s = 1 if (self.transformer.config.run.get("vae") or {}).get("kind") == "sd" else 4  # the VAE's frame stride
        if num_frames is not None and (int(num_frames) < 1 or (int(num_frames) - 1) % s):
            raise ValueError(f"num_frames={num_frames}: must be 1 + {s}k (the VAE's frame stride), "
                             f"e.g. {1 + s * (self.transformer.config.latent_grid[0] - 1)}")

    # -------------------------------------------------------------- sampling
    @torch.no_grad()
    def __call__(
        self,
        prompt: Optional[Union[str, Sequence[str]]] = None,
        modality: Optional[Union[str, Sequence[str]]] = None,
        attributes: Optional[dict] = None,
        image: Any = None,
        num_frames: Optional[int] = None,
        num_inference_steps: Optional[int] = None,
        guidance_scale: Optional[float] = None,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        num_videos: Optional[int] = None,
        negative_prompt: Optional[str] = None,
        output_type: str = "np",
        seed: int = 0,
        overlap: int = 0,
    ) -> MedSoraPipelineOutput:
        """Generate videos.

        Args:
            prompt / modality: one value for every video or one per video.
            num_frames: 1 + 4k frames for the causal VAE, any count for vae=sd (default: the training length);
                beyond the training length the clip is extended window by window as ``--frames`` does
                (``overlap``: latent frames cross-faded per window; README "Long videos").
            num_inference_steps, guidance_scale: default to the run's ``diffusion.sample_steps`` / ``cfg_scale``.
            generator: one CPU generator per video; without, video i uses
                ``seed + i`` like ``python -m medsora.sample --seed``.
            num_videos: number of videos (default: the number of prompts, modalities or generators, else 1).
            output_type: ``np`` | ``pt`` | ``pil`` | ``latent``.
        """
        if output_type not in ("np", "pt", "pil", "latent"):
            raise ValueError(f"output_type={output_type!r}: use np, pt, pil or latent")
        self._check(prompt, modality, attributes, image, num_frames)
        as_list = lambda v: None if v is None else ([v] if isinstance(v, str) else list(v))  # noqa: E731
        prompts, modalities = as_list(prompt), as_list(modality)
        gens = None if generator is None else ([generator] if isinstance(generator, torch.Generator) else list(generator))
        sizes = {len(v) for v in (prompts, modalities, gens) if v is not None and len(v) > 1}
        n = num_videos or (max(sizes) if sizes else 1)
        if len(sizes | {n}) > 1:
            raise ValueError(f"num_videos={n} disagrees with the lengths of prompt/modality/generator ({sorted(sizes)})")
        if gens is not None and len(gens) != n:
            raise ValueError(f"got {len(gens)} generators for {n} videos: pass one per video (or none, and seed=)")
        model = ExportedModel(self.transformer, self.vae, self.condition_encoder)
        control: dict = {}
        if attributes:  # {name: value}, validated as --attr NAME=VALUE is (unknown names/values name the allowed ones)
            from medsora.cond.attribute_spec import parse_assignments

            control["attributes"] = parse_assignments(self.condition_encoder.encoder.attribute_specs,
                                                      [f"{k}={v}" for k, v in attributes.items()])
        if image is not None:  # a PNG/JPEG/DICOM/video path, preprocessed exactly as the training clips
            from medsora.cond.first_frame import load_first_frame

            control["first_frames"] = load_first_frame(image, model.cfg.data, 0)
        fill = lambda v: None if v is None else (v * n if len(v) == 1 else v)  # noqa: E731
        videos, labels = model.generate(
            n, seed=seed, sampler=self._sampler(), steps=num_inference_steps, guidance_scale=guidance_scale,
            modalities=fill(modalities), prompts=fill(prompts), negative_prompt=negative_prompt, batch_size=n,
            progress=not self._progress_bar_config.get("disable", False), return_labels=True,
            decode=output_type != "latent", generators=gens, num_frames=num_frames, overlap=overlap, **control,
        )
        if output_type == "latent":
            return MedSoraPipelineOutput(frames=videos, labels=labels)
        from diffusers.video_processor import VideoProcessor

        frames = VideoProcessor(do_resize=False, do_normalize=True).postprocess_video(videos, output_type=output_type)
        return MedSoraPipelineOutput(frames=frames, labels=labels)
