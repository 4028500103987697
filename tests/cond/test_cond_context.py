"""Context latents (image-to-video, long video): placement, backbone channels, clean through every sampler,
masked loss, and the conditioning image read like training data."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medsora.backbone import MedSoraDiT
from medsora.cond import Condition, ContextLatents
from medsora.cond.first_frame import load_first_frame
from medsora.config import compose
from medsora.diffusion import DiffusionObjective, sample_generators, sample_latents

C, HIDDEN = 4, 32


def test_context_frames_at_arbitrary_positions():
    given = torch.randn(2, C, 2, 4, 4)
    ctx = ContextLatents.frames(given, [3, 1], length=5)  # e.g. the last two frames of a previous window
    assert ctx.mask.shape == (2, 1, 5, 4, 4)
    assert ctx.mask[:, 0, :, 0, 0].tolist() == [[False, True, False, True, False]] * 2
    assert torch.equal(ctx.latents[:, :, 3], given[:, :, 0]) and torch.equal(ctx.latents[:, :, 1], given[:, :, 1])
    assert ctx.latents[:, :, [0, 2, 4]].abs().sum() == 0
    dropped = ctx.drop(torch.tensor([True, False]))
    assert not dropped.mask[0].any() and torch.equal(dropped.mask[1], ctx.mask[1])
    with pytest.raises(ValueError, match="must lie in 0..4"):
        ContextLatents.frames(given, [3, 5], length=5)


def _model(context_frames=True, perturb=True):
    model = MedSoraDiT(C, blocks=["full_attn"], depth=1, hidden=HIDDEN, heads=4, scan_impl="torch",
                       context_frames=context_frames).eval()
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                if (p == 0).all():
                    p.normal_(std=0.1)
            if context_frames:  # the zero-initialised context channels of the patch embedding
                model.patch_embed.proj.weight[:, C:].normal_(std=0.1)
    return model


def test_context_channels_start_silent_and_then_matter():
    x, t = torch.randn(2, C, 3, 8, 8), torch.tensor([5, 500])
    ctx = ContextLatents.frames(torch.randn(2, C, 1, 8, 8), [0], 3)
    fresh = _model(perturb=False)
    with torch.no_grad():  # zero-initialised context weights: a fresh model is the unconditional one
        fresh.final_layer.linear.weight.normal_(std=0.1)
        torch.testing.assert_close(fresh(x, t), fresh(x, t, context_latents=ctx.latents, context_latent_mask=ctx.mask))
    model = _model()
    with torch.no_grad():
        assert not torch.allclose(model(x, t), model(x, t, context_latents=ctx.latents, context_latent_mask=ctx.mask))
    assert model.patch_embed.proj.in_channels == 2 * C + 1
    with pytest.raises(ValueError, match="no context channels"):
        _model(context_frames=False)(x, t, context_latents=ctx.latents, context_latent_mask=ctx.mask)


@pytest.mark.parametrize("diffusion,sampler", [("medsora", "ddpm"), ("medsora", "ddim"), ("medsora", "dpmpp"),
                                               ("flow_matching", "euler"), ("flow_matching", "heun")])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_every_sampler_keeps_the_context_clean(diffusion, sampler, scale):
    cfg = compose("diffusion_demo", [f"diffusion={diffusion}", "diffusion.sample_steps=6"]).diffusion
    model = _model()
    ctx = ContextLatents.frames(torch.randn(2, C, 2, 8, 8) * 2, [0, 3], 4)
    seen = []

    def denoiser(x, t, **kwargs):
        assert torch.equal(kwargs["context_latents"], ctx.latents.repeat(x.shape[0] // 2, 1, 1, 1, 1))
        seen.append(x[:, :, [0, 3]].clone())
        return model(x, t, **kwargs)

    cond = Condition(torch.randn(2, HIDDEN)).with_context(ctx)
    uncond = Condition(torch.zeros(2, HIDDEN)).with_context(ctx)
    out = sample_latents(denoiser, (2, C, 4, 8, 8), cfg, generators=sample_generators(0, 2), sampler=sampler,
                         guidance_scale=scale, cond=cond.model_kwargs(), uncond=uncond.model_kwargs())
    assert len(seen) >= 6  # one model evaluation per step (Heun: two per step but the last)
    for x in seen:  # the model saw the clean context at every step, in both guidance branches
        assert torch.equal(x, ctx.latents[:, :, [0, 3]].repeat(x.shape[0] // 2, 1, 1, 1, 1))
    assert torch.equal(out[:, :, [0, 3]], ctx.latents[:, :, [0, 3]])
    assert not torch.equal(out[:, :, 1], torch.zeros_like(out[:, :, 1]))


def test_loss_skips_the_context_positions():
    objective = DiffusionObjective(compose("diffusion_demo", ["diffusion=medsora"]).diffusion)
    x0, eps = torch.randn(2, C, 3, 4, 4), torch.randn(2, C, 3, 4, 4)
    t = torch.tensor([10, 900])
    xt = objective.scheduler.add_noise(x0, eps, t)
    mask = ContextLatents.frames(x0[:, :, :1], [0], 3).mask
    out = torch.randn_like(x0)
    changed = out.clone()
    changed[:, :, 0] += 10.0  # a wild prediction where the latents are given
    a = objective.losses(out, x0, xt, t, eps, weight=~mask)["denoise"]
    b = objective.losses(changed, x0, xt, t, eps, weight=~mask)["denoise"]
    torch.testing.assert_close(a, b)
    expected = (out[:, :, 1:] - eps[:, :, 1:]).pow(2).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(a, expected)


def _dicom(path, frames: np.ndarray):
    """An 8-bit multi-frame MONOCHROME2 DICOM with an identity window (centre 128, width 256)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "US"
    ds.set_pixel_data(frames, "MONOCHROME2", 8)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.WindowCenter, ds.WindowWidth = 128, 256
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_frame_png_and_video_give_the_same_conditioning(tmp_path):
    from medsora.data.demo.writer import write_mp4

    data = compose("diffusion_demo").data  # 32 px, centre crop
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 48, 40), dtype=np.uint8)
    dcm = _dicom(tmp_path / "cine.dcm", frames)
    Image.fromarray(frames[2]).save(tmp_path / "frame2.png")
    Image.fromarray(np.repeat(frames[0][..., None], 3, -1)).save(tmp_path / "frame0.png")
    from_dicom = load_first_frame(dcm, data, frame=2)
    from_png = load_first_frame(tmp_path / "frame2.png", data)
    assert from_dicom.shape == (3, 32, 32) and from_dicom.min() >= -1 and from_dicom.max() <= 1
    assert torch.equal(from_dicom, from_png)
    assert not torch.equal(load_first_frame(dcm, data, frame=0), from_png)
    write_mp4(tmp_path / "clip.mp4", np.repeat(frames[..., None], 3, -1), 8)  # lossless when libx264rgb is present
    from_video = load_first_frame(tmp_path / "clip.mp4", data)
    assert (from_video - load_first_frame(tmp_path / "frame0.png", data)).abs().max() <= 2 / 255 * 4
    with pytest.raises(ValueError, match=r"frame 7 requested.*--image-frame"):
        load_first_frame(dcm, data, frame=7)
    with pytest.raises(FileNotFoundError, match="--image .*missing.png: no such file"):
        load_first_frame(tmp_path / "missing.png", data)
