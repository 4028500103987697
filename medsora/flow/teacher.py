"""The frozen optical-flow teacher of OFRA: torchvision RAFT and the alignment targets built from it."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import flow_to_image

from medsora.flow.image_encoder import FlowImageEncoder
from medsora.flow.latent_grid import aggregate_frames, pool_to_grid
from medsora.flow.raft_weights import build_raft, weights_identity

TARGETS = ("raft_motion", "flow", "flow_image")


def teacher_identity(target: str, arch: str, weights: str, seed: int, iters: int, min_size: int,
                     flow_cells: int, encoder: Optional[str], encoder_size: int, encoder_layers=()) -> dict:
    """The settings that determine a teacher's targets, as plain values (no model is loaded).

    ``weights`` becomes :func:`weights_identity` (enum file name, file SHA-256, or random seed);
    keys that do not affect the chosen ``target`` are left out.
    """
    ident = {"target": target, "arch": arch, "iters": iters, "min_size": min_size,
             "weights": weights_identity(arch, weights, seed)}
    if target == "flow":
        ident["flow_cells"] = flow_cells
    if target == "flow_image":
        ident.update(encoder=str(Path(encoder).expanduser()) if encoder else None, encoder_size=encoder_size)
        if encoder_layers:
            ident["encoder_layers"] = [int(v) for v in encoder_layers]
    return ident


class FlowTeacher(nn.Module):
    """Frozen RAFT between consecutive frames, turned into per-token alignment targets.

    Always in eval mode, parameters never require grad, every call runs under ``no_grad``
    in float32 (autocast off: the correlation volume is sensitive to low precision).
    Frames are taken in ``[-1, 1]`` (RAFT's own input range); grayscale is repeated to RGB;
    frames whose short side is below ``min_size`` are upsampled (RAFT's 4-level correlation
    pyramid needs >= 128 px) and all are replicate-padded to a multiple of 8; flows are mapped
    back to the input size and pixel units.

    Targets (``target``), all ``B×T×h×w×D`` on the token grid (see ``medsora.flow.latent_grid``
    for the pixel-flow -> latent-frame mapping):

    * ``raft_motion``: RAFT's features at its last refinement iteration, concatenated:
      the GRU hidden state (output of ``update_block``) and the motion-encoder output
      (``update_block.motion_encoder``), captured with forward hooks.
      ``D = 96 + 82 = 178`` (raft_small) or ``128 + 128 = 256`` (raft_large);
    * ``flow``: the flow in units of the frame size (``u/W, v/H``), each token carrying a
      ``flow_cells×flow_cells`` sub-grid of area-averaged vectors: ``D = 2·flow_cells²``;
    * ``flow_image``: per clip, the latent-frame flows rendered with
      ``torchvision.utils.flow_to_image`` (normalised by the clip's largest motion, so the
      target does not depend on which clips share a batch), encoded by a frozen local image
      encoder (:class:`FlowImageEncoder`): ``D`` = the encoder's width.

    Args:
        arch: ``raft_small`` | ``raft_large``.
        weights: see :func:`medsora.flow.raft_weights.build_raft`.
        iters: RAFT refinement iterations.
        target: one of ``raft_motion``, ``flow``, ``flow_image``.
        seed: init seed for ``weights="random"``.
        min_size: minimum short side handed to RAFT.
        chunk: frame pairs per RAFT call.
        flow_cells: sub-grid side for ``target="flow"``.
        encoder, encoder_size: the image encoder for ``target="flow_image"``.
    """

    def __init__(self, arch: str = "raft_small", weights: str = "default", iters: int = 12,
                 target: str = "raft_motion", *, seed: int = 0, min_size: int = 128, chunk: int = 32,
                 flow_cells: int = 4, encoder: Optional[str] = None, encoder_size: int = 224,
                 encoder_layers=()):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"align.target: '{target}' is not one of {list(TARGETS)}")
        if target == "flow_image" and not encoder:
            raise ValueError("align.target=flow_image needs align.teacher.encoder=PATH (a local transformers "
                             "folder, .pt2 exported program or TorchScript file of an image encoder, e.g. a DINO ViT)")
        self.arch, self.weights, self.iters, self.target = arch, weights, iters, target
        self.seed, self.min_size, self.chunk, self.flow_cells = seed, min_size, max(1, chunk), flow_cells
        self.raft = build_raft(arch, weights, seed)
        self.image_encoder = FlowImageEncoder(encoder, encoder_size, encoder_layers) if target == "flow_image" else None
        self.requires_grad_(False)
        self.eval()
        self._captured: dict[str, torch.Tensor] = {}
        update = self.raft.update_block
        # Each refinement iteration overwrites these, so after a forward they hold the last one.
        update.motion_encoder.register_forward_hook(self._keep("motion"))
        update.register_forward_hook(self._keep("hidden", index=0))
        self.raft_dim = update.hidden_state_size + update.motion_encoder.out_channels

    @classmethod
    def from_config(cls, align_cfg) -> "FlowTeacher":
        """Build from the ``align:`` config section."""
        from medsora.flow.layers import align_layers, per_layer_teacher

        t = align_cfg.teacher
        return cls(t.arch, t.weights, t.iters, align_cfg.target, seed=t.seed, min_size=t.min_size,
                   chunk=t.chunk, flow_cells=align_cfg.flow_cells, encoder=t.encoder,
                   encoder_size=t.encoder_size,
                   encoder_layers=align_layers(align_cfg) if per_layer_teacher(align_cfg) else ())

    def _keep(self, name: str, index: Optional[int] = None):
        def hook(module, args, output):
            self._captured[name] = output if index is None else output[index]
        return hook

    @property
    def dim(self) -> int:
        """Feature width ``D`` of :meth:`targets`."""
        if self.target == "raft_motion":
            return self.raft_dim
        if self.target == "flow":
            return 2 * self.flow_cells ** 2
        return self.image_encoder.dim

    def identity(self) -> dict:
        """What determines the targets (recorded in encode-cache fingerprints)."""
        encoder = self.image_encoder
        return teacher_identity(self.target, self.arch, self.weights, self.seed, self.iters, self.min_size,
                                self.flow_cells, encoder.path if encoder else None, encoder.size if encoder else 0,
                                encoder.layers if encoder else ())

    def train(self, mode: bool = True) -> "FlowTeacher":
        """Stays in eval mode whatever the caller asks: the teacher is frozen."""
        return super().train(False)

    def _frames(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim != 5 or video.shape[1] not in (1, 3):
            raise ValueError(f"FlowTeacher expects videos B×C×F×H×W with C = 1 or 3 in [-1, 1], "
                             f"got shape {tuple(video.shape)}")
        if video.shape[2] < 2:
            raise ValueError(f"optical flow needs at least 2 frames, got {video.shape[2]}")
        video = video.float()
        return video.expand(-1, 3, -1, -1, -1) if video.shape[1] == 1 else video

    def _raft(self, img1: torch.Tensor, img2: torch.Tensor, want_features: bool):
        """RAFT on ``N×3×H×W`` pairs -> (flows ``N×2×H×W`` in input pixels, features ``N×D×H8×W8`` or None)."""
        n, _, h, w = img1.shape
        scale = max(1.0, self.min_size / min(h, w))
        hs, ws = (math.ceil(h * scale - 1e-6), math.ceil(w * scale - 1e-6)) if scale > 1 else (h, w)
        pad_h, pad_w = (-hs) % 8, (-ws) % 8

        def prep(img):
            if (hs, ws) != (h, w):
                img = F.interpolate(img, size=(hs, ws), mode="bilinear", align_corners=False)
            return F.pad(img, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else img

        flows, feats = [], []
        for i in range(0, n, self.chunk):
            a, b = prep(img1[i:i + self.chunk]), prep(img2[i:i + self.chunk])
            flow = self.raft(a, b, num_flow_updates=self.iters)[-1][:, :, :hs, :ws]
            if (hs, ws) != (h, w):
                flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
                flow = flow * torch.tensor([w / ws, h / hs], device=flow.device).view(1, 2, 1, 1)
            flows.append(flow)
            if want_features:
                feats.append(torch.cat([self._captured["hidden"], self._captured["motion"]], dim=1))
            self._captured.clear()
        return torch.cat(flows), (torch.cat(feats) if want_features else None)

    def _pairs(self, video: torch.Tensor, want_features: bool):
        b, _, f, h, w = video.shape
        first = video[:, :, :-1].transpose(1, 2).reshape(b * (f - 1), 3, h, w)
        second = video[:, :, 1:].transpose(1, 2).reshape(b * (f - 1), 3, h, w)
        with torch.no_grad(), torch.autocast(video.device.type, enabled=False):
            return self._raft(first, second, want_features)

    def flows(self, video: torch.Tensor) -> torch.Tensor:
        """Optical flow between consecutive frames.

        Args:
            video: ``B×C×F×H×W`` in ``[-1, 1]``, ``C`` 1 or 3.
        Returns:
            ``B×(F-1)×2×H×W``: flow ``i`` maps frame ``i`` to ``i+1``, (u, v) in pixels.
        """
        video = self._frames(video)
        b, _, f, h, w = video.shape
        flow, _ = self._pairs(video, want_features=False)
        return flow.view(b, f - 1, 2, h, w)

    def targets(self, video: torch.Tensor, latent_grid: tuple[int, int, int]) -> torch.Tensor:
        """Alignment targets on the backbone's token grid.

        Args:
            video: ``B×C×F×H×W`` in ``[-1, 1]``.
            latent_grid: ``(T, h, w)`` token grid, ``T = 1 + (F-1)/4``, ``h = H/8/patch``.
        Returns:
            ``B×T×h×w×D`` float32 (``D = self.dim``).
        """
        video = self._frames(video)
        b, _, f, h_px, w_px = video.shape
        t, h, w = (int(v) for v in latent_grid)
        flow, feats = self._pairs(video, want_features=self.target == "raft_motion")
        with torch.no_grad(), torch.autocast(video.device.type, enabled=False):
            if self.target == "raft_motion":
                pooled = pool_to_grid(feats, (h, w)).view(b, f - 1, -1, h, w)
                return aggregate_frames(pooled, t).permute(0, 1, 3, 4, 2).contiguous()
            per_latent = aggregate_frames(flow.view(b, f - 1, 2, h_px, w_px), t)  # B×T×2×H×W, pixels
            if self.target == "flow":
                size = torch.tensor([w_px, h_px], device=flow.device, dtype=flow.dtype).view(1, 1, 2, 1, 1)
                cells = pool_to_grid((per_latent / size).flatten(0, 1), (h * self.flow_cells, w * self.flow_cells))
                tokens = F.pixel_unshuffle(cells, self.flow_cells)  # (B·T)×(2·c²)×h×w
                return tokens.view(b, t, -1, h, w).permute(0, 1, 3, 4, 2).contiguous()
            images = torch.cat([flow_to_image(clip.contiguous()) for clip in per_latent])  # (B·T)×3×H×W uint8
            maps = pool_to_grid(self.image_encoder(images).float(), (h, w))
            return maps.view(b, t, -1, h, w).permute(0, 1, 3, 4, 2).contiguous()
