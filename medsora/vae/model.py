"""The frequency-compensated 3D causal video VAE: diffusers' CogVideoX VAE plus our branches.

The base is ``diffusers.AutoencoderKLCogVideoX`` (8× spatial, 4× temporal
compression: ``F = 1 + 4k`` frames ↔ ``1 + k`` latent frames), made strictly causal
by :mod:`medsora.vae.causal`. The compensation branches of
:mod:`medsora.vae.frequency` are attached with forward hooks on the encoder's and
decoder's mid blocks and on the decoder's up blocks, so diffusers' forward code runs
unchanged, the base keeps its exact state-dict keys (``save_pretrained`` /
``from_pretrained`` stay compatible) and ``freq_comp=False`` *is* the base model.
(The hooks live on the base's modules: running ``vae.base`` directly runs the
branches too; ``vae.base.state_dict()`` holds the base's weights only.)

Long and large videos reuse diffusers' frame batching (``conv_cache`` carried from
chunk to chunk) and overlap-blended spatial tiling, configured by
:meth:`FreqCompVAE.set_chunking`. With ``norm="frame"`` a chunked pass equals the
full pass up to float rounding (tests: max |Δ| ≤ 1e-5). Tiling is approximate
because each tile has its own normalisation statistics and a truncated receptive
field: on a trained tiny VAE, tiles of 48 px blended over 16 px reconstruct a 64 px
clip within ~1 dB of the full pass (``tests/vae/test_vae_training.py``; figures for
the demo VAE in ``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from diffusers import AutoencoderKLCogVideoX
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn

from medsora.config.fields import section
from medsora.vae.causal import make_causal
from medsora.vae.frequency import CausalBranch3D, FrequencyBranch2D, MidBlockHook, UpBlockHook
from medsora.vae.schema import VAEConfig
from medsora.vae.shortcut import attach_shortcuts

SPATIAL_RATIO = 8
TEMPORAL_RATIO = 4
_FULL_PASS = 1 << 30  # frame-batch size that makes diffusers' loops a single call
ARCH_KEYS = ("latent_channels", "block_out_channels", "layers_per_block", "norm_num_groups")


def resolved_norm(settings) -> str:
    """``vae.norm`` with ``auto`` resolved: a pretrained base keeps its clip-wide GroupNorm statistics
    (changing them inside a frozen pretrained network would feed it statistics it never saw); a VAE
    trained from scratch takes per-frame statistics (strictly causal, chunked == full)."""
    if settings.norm != "auto":
        return settings.norm
    return "clip" if settings.pretrained else "frame"


class FreqCompVAE(nn.Module):
    """Causal video VAE with frequency compensation.

    ``encode(video: B×3×F×H×W in [-1, 1]) -> DiagonalGaussianDistribution`` over latents
    ``B×C×T×h×w`` (``T = 1 + (F-1)/4``, ``h = H/8``, ``w = W/8``; ``.mean``, ``.std``,
    ``.sample(generator)``, ``.mode()``); ``decode(z: B×C×T×h×w) -> B×3×F×H×W``.

    Built from the whole ``vae:`` section (:class:`medsora.vae.schema.VAEConfig`), read here:
    a new option of the VAE is a schema field plus the code that uses it.

    Args:
        base: the diffusers VAE (random or pretrained, see :func:`build_base`); modified in
            place to be causal.
        config: the ``vae:`` settings (a ``VAEConfig``, the ``vae`` section of a composed run
            config, or ``None`` for the defaults). Read here: ``freq_comp`` (attach the
            compensation branches; False = the plain base model), ``freq_kind`` (``"haar"`` or
            ``"fft"`` high-frequency extraction of the 2-D branches), ``freq_hidden`` (their
            hidden channels), ``freq_dropout`` (dropout of the 3-D branches), ``norm``
            (``"frame"``: causal, chunk-exact; ``"clip"``: diffusers' GroupNorm; ``"auto"``: clip
            for a pretrained base, else frame — :func:`resolved_norm`) and
            ``chunk_frames``, ``tile_size``, ``tile_overlap`` (see :meth:`set_chunking`) and
            ``shortcut`` (the non-parametric colour shortcuts of :mod:`medsora.vae.shortcut`).
        **overrides: ``VAEConfig`` fields replacing those of ``config`` (``FreqCompVAE(base, freq_comp=False)``).
    """

    temporal_stride = TEMPORAL_RATIO  # F = 1 + 4k pixel frames <-> 1 + k latent frames
    spatial_stride = SPATIAL_RATIO

    def __init__(self, base: AutoencoderKLCogVideoX, config: VAEConfig | None = None, **overrides):
        super().__init__()
        settings = section(VAEConfig, config, overrides)
        cfg = base.config
        if len(cfg.block_out_channels) != 4 or cfg.temporal_compression_ratio != TEMPORAL_RATIO:
            raise ValueError(
                f"the VAE needs 4 blocks (8× spatial) and temporal_compression_ratio 4, got "
                f"block_out_channels={list(cfg.block_out_channels)}, "
                f"temporal_compression_ratio={cfg.temporal_compression_ratio}: set vae.block_out_channels to 4 values"
            )
        self.norm = resolved_norm(settings)
        make_causal(base, self.norm, settings.upsample)
        self.config = settings
        self.base = base
        self.freq_comp = settings.freq_comp
        if settings.freq_comp:
            mid = cfg.block_out_channels[-1]
            self.encoder_branch = FrequencyBranch2D(mid, settings.freq_hidden, settings.freq_kind)
            self.decoder_branch = FrequencyBranch2D(mid, settings.freq_hidden, settings.freq_kind)
            self.up_branches = nn.ModuleList(
                CausalBranch3D(ch, cfg.norm_num_groups, settings.freq_dropout) for ch in reversed(cfg.block_out_channels)
            )
            base.encoder.mid_block.register_forward_hook(MidBlockHook(self.encoder_branch))
            base.decoder.mid_block.register_forward_hook(MidBlockHook(self.decoder_branch))
            for block, branch in zip(base.decoder.up_blocks, self.up_branches):
                block.register_forward_hook(UpBlockHook(branch), with_kwargs=True)
        if settings.shortcut:
            attach_shortcuts(base, SPATIAL_RATIO, TEMPORAL_RATIO)
        self.set_chunking(settings.chunk_frames, settings.tile_size, settings.tile_overlap)

    @classmethod
    def from_config(cls, cfg) -> "FreqCompVAE":
        """Build from a ``vae:`` config section (:class:`medsora.vae.schema.VAEConfig`): the base
        of :func:`build_base` (random, or ``vae.pretrained``) with this section's settings."""
        return cls(build_base(cfg), cfg)

    @property
    def latent_channels(self) -> int:
        return self.base.config.latent_channels

    def branch_parameters(self) -> list[nn.Parameter]:
        """Parameters of the compensation branches (empty when ``freq_comp`` is off)."""
        base_ids = {id(p) for p in self.base.parameters()}
        return [p for p in self.parameters() if id(p) not in base_ids]

    def set_chunking(self, chunk_frames: int = 0, tile_size: int = 0, tile_overlap: float = 0.25) -> None:
        """Choose how encode/decode cover long or large videos.

        Args:
            chunk_frames: latent frames per chunk (``4·chunk_frames`` input frames per
                encoder chunk; the first chunk also holds frame 0 and the remainder);
                0 = one full pass.
            tile_size: spatial tile side in pixels (a multiple of 8); 0 = no tiling.
                Videos no larger than a tile are not tiled.
            tile_overlap: fraction of a tile blended with its neighbour; ``tile_size/8 ·
                tile_overlap`` must be a whole number of latent pixels.
        """
        if chunk_frames < 0:
            raise ValueError(f"vae.chunk_frames = {chunk_frames}: expected 0 (full pass) or a positive count")
        self.base.num_latent_frames_batch_size = chunk_frames or _FULL_PASS
        self.base.num_sample_frames_batch_size = TEMPORAL_RATIO * chunk_frames or _FULL_PASS
        if tile_size == 0:
            self.base.disable_tiling()
            return
        blend = tile_size / SPATIAL_RATIO * tile_overlap
        if tile_size % SPATIAL_RATIO or not 0 < tile_overlap <= 0.5 or blend < 1 or not math.isclose(blend, round(blend)):
            raise ValueError(
                f"vae.tile_size = {tile_size}, vae.tile_overlap = {tile_overlap}: the tile must be a multiple of 8 "
                f"pixels and tile_size/8 · tile_overlap a whole number ≥ 1 of latent pixels with overlap ≤ 0.5 "
                f"(e.g. tile_size=128 tile_overlap=0.25)"
            )
        self.base.enable_tiling(
            tile_sample_min_height=tile_size,
            tile_sample_min_width=tile_size,
            tile_overlap_factor_height=tile_overlap,
            tile_overlap_factor_width=tile_overlap,
        )

    def _check_video(self, video: torch.Tensor) -> None:
        shape = tuple(video.shape)
        in_ch = self.base.config.in_channels
        if video.ndim != 5 or shape[1] != in_ch:
            raise ValueError(f"expected a video B×{in_ch}×F×H×W, got shape {shape}")
        f, h, w = shape[2:]
        if (f - 1) % TEMPORAL_RATIO:
            raise ValueError(
                f"video has {f} frames; the causal VAE needs 1 + 4k frames (e.g. 17, 33, 65): "
                f"set data.num_frames to {f - (f - 1) % TEMPORAL_RATIO} or {f + TEMPORAL_RATIO - (f - 1) % TEMPORAL_RATIO}"
            )
        if h % SPATIAL_RATIO or w % SPATIAL_RATIO:
            raise ValueError(f"video is {h}×{w}; height and width must be multiples of 8 (set data.size accordingly)")

    def encode(self, video: torch.Tensor) -> DiagonalGaussianDistribution:
        """``video: B×3×F×H×W`` in ``[-1, 1]`` -> posterior over ``B×C×T×h×w`` latents."""
        self._check_video(video)
        return self.base.encode(video).latent_dist

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z: B×C×T×h×w`` (unscaled latents) -> ``B×3×(1+4(T-1))×8h×8w``."""
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise ValueError(f"expected latents B×{self.latent_channels}×T×h×w, got shape {tuple(z.shape)}")
        return self.base.decode(z).sample

    def forward(
        self, video: torch.Tensor, sample_posterior: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, DiagonalGaussianDistribution]:
        """Reconstruct: returns ``(recon: B×3×F×H×W, posterior)``."""
        posterior = self.encode(video)
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z), posterior


def _pretrained_folder(path: str) -> tuple[Path, str | None]:
    root = Path(path).expanduser()
    if (root / "config.json").is_file():
        return root, None
    if (root / "vae" / "config.json").is_file():
        return root, "vae"
    raise FileNotFoundError(
        f"vae.pretrained = '{path}': no diffusers VAE there (expected {root}/config.json or {root}/vae/config.json). "
        "Download one on a machine with internet, e.g. `huggingface-cli download THUDM/CogVideoX-2b --include "
        "'vae/*' --local-dir DIR`, copy it here and set vae.pretrained=DIR"
    )


def _plain(value):
    """Config values comparable across OmegaConf lists, tuples and plain numbers."""
    return value if isinstance(value, (int, float, str)) else list(value)


def build_base(cfg) -> AutoencoderKLCogVideoX:
    """The diffusers VAE described by a ``vae:`` config: ``from_pretrained`` of a local
    folder when ``cfg.pretrained`` is set (its architecture must match the config's), else random."""
    if cfg.pretrained:
        folder, subfolder = _pretrained_folder(cfg.pretrained)
        base = AutoencoderKLCogVideoX.from_pretrained(folder, subfolder=subfolder, local_files_only=True)
        wanted = {key: _plain(getattr(cfg, key)) for key in ARCH_KEYS}
        found = {key: _plain(base.config[key]) for key in ARCH_KEYS}
        diff = [f"vae.{k}={wanted[k]} but the folder has {found[k]}" for k in ARCH_KEYS if wanted[k] != found[k]]
        if diff:
            raise ValueError(
                f"vae.pretrained = '{cfg.pretrained}' does not match the config: " + "; ".join(diff)
                + " — set those keys to the folder's values (configs/vae/medsora.yaml matches CogVideoX)"
            )
        return base
    return AutoencoderKLCogVideoX(
        latent_channels=cfg.latent_channels,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        norm_num_groups=cfg.norm_num_groups,
    )
