"""Long-video decoding: never more than a chunk of latent frames per decoder call, equal to the full pass."""
from __future__ import annotations

import pytest
import torch

from medsora.vae.chunked_decode import decode_chunked


def _count_decoder_frames(vae):
    """A pre-hook recording the latent frames of every decoder call (memory bound, counted not timed)."""
    seen = []
    handle = vae.base.decoder.register_forward_pre_hook(lambda module, args, kwargs: seen.append(args[0].shape[2]),
                                                       with_kwargs=True)
    return seen, handle


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_chunked_decode_never_sees_more_than_a_chunk_and_equals_the_full_pass(tiny_vae, video, chunk):
    with torch.no_grad():
        z = tiny_vae.encode(video(batch=2, frames=45)).mode()  # 12 latent frames: 5 does not divide them
        full = tiny_vae.decode(z).float().clamp(-1, 1)
        seen, handle = _count_decoder_frames(tiny_vae)
        chunked = decode_chunked(tiny_vae, z, chunk)
        handle.remove()
    assert max(seen) <= chunk and sum(seen) == 12 and len(seen) == -(-12 // chunk)
    assert chunked.shape == full.shape == (2, 3, 45, 32, 32) and chunked.device.type == "cpu"
    torch.testing.assert_close(chunked, full, rtol=0, atol=1e-5)


def test_first_chunk_is_bit_equal_to_a_plain_decode_of_that_window(tiny_vae, video):
    """A long clip's first window decodes exactly as the plain sample of that window would."""
    with torch.no_grad():
        z = tiny_vae.encode(video(frames=33)).mode()  # 9 latent frames
        window = tiny_vae.decode(z[:, :, :3]).float().clamp(-1, 1)  # 9 video frames
        chunked = decode_chunked(tiny_vae, z, 3)
    assert torch.equal(chunked[:, :, :9], window)


def test_tiled_vae_decodes_through_diffusers_loop_with_the_chunk_as_its_frame_batch(tiny_vae, video):
    with torch.no_grad():
        z = tiny_vae.encode(video(frames=21, size=64)).mode()  # 6 latent frames, 8×8 latents
        tiny_vae.set_chunking(tile_size=32, tile_overlap=0.25)
        reference = tiny_vae.decode(z).float().clamp(-1, 1)
        before = tiny_vae.base.num_latent_frames_batch_size
        seen, handle = _count_decoder_frames(tiny_vae)
        out = decode_chunked(tiny_vae, z, 2)
        handle.remove()
    assert tiny_vae.base.num_latent_frames_batch_size == before  # restored
    assert max(seen) <= 2 and out.shape == reference.shape
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="chunk = 0"):
        decode_chunked(tiny_vae, z, 0)
