"""Every source format read from small real files: videos, frame folders, DICOM, NIfTI, bad files."""
from __future__ import annotations

import av
import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from pydicom.pixels import convert_color_space

from medsora.data.sources import UnreadableVideo, probe_video, read_video
from medsora.data.sources.formats import is_dicom_file


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except (av.error.FFmpegError, ValueError):
        return False


# (suffix, codec, pixel format, max mean abs error): lossless codecs must round-trip exactly.
CONTAINERS = [
    (".mp4", "libx264rgb", "rgb24", 0.0),
    (".mov", "libx264rgb", "rgb24", 0.0),
    (".mkv", "ffv1", "bgr0", 0.0),
    (".avi", "ffv1", "bgr0", 0.0),
    (".webm", "libvpx-vp9", "yuv420p", 6.0),
]


@pytest.mark.parametrize("suffix,codec,pix_fmt,tolerance", CONTAINERS)
def test_video_containers_decode_to_rgb_frames(tmp_path, media, suffix, codec, pix_fmt, tolerance):
    if not _has_encoder(codec):
        pytest.skip(f"this PyAV build cannot encode {codec}")
    frames = media.pattern(6, 40, 48)
    path = media.video(tmp_path / f"clip{suffix}", frames, codec=codec, pix_fmt=pix_fmt, fps=10)
    decoded, meta = read_video(path)
    assert decoded.dtype == np.uint8 and decoded.shape == (6, 40, 48, 3)
    assert np.abs(decoded.astype(int) - frames).mean() <= tolerance
    assert meta["format"] == "video" and (meta["height"], meta["width"]) == (40, 48)
    assert meta["num_frames"] == 6 and meta["fps"] == pytest.approx(10.0)


def test_gif_keeps_frame_order(tmp_path, media):
    frames = media.pattern(5, 32, 40)
    path = media.video(tmp_path / "anim.gif", frames, codec="gif", pix_fmt="rgb8", fps=5)
    decoded, meta = read_video(path)
    assert decoded.shape == (5, 32, 40, 3)
    # A palette is lossy, but every decoded frame is still closest to its own source frame.
    distance = np.abs(decoded[:, None].astype(int) - frames[None].astype(int)).mean(axis=(2, 3, 4))
    assert distance.argmin(axis=1).tolist() == list(range(5))


def test_video_indices_return_requested_frames_in_order(tmp_path, media):
    frames = media.pattern(9, 24, 32)
    path = media.video(tmp_path / "clip.mp4", frames)
    decoded, meta = read_video(path, indices=[6, 1, 1, 3])
    np.testing.assert_array_equal(decoded, frames[[6, 1, 1, 3]])
    assert meta["num_frames"] == 9
    with pytest.raises(UnreadableVideo, match="truncated: frame 12 requested, only 9"):
        read_video(path, indices=[12])


def test_bad_video_files_raise_unreadable_with_reason(tmp_path, media):
    frames = media.pattern(12, 32, 32)
    whole = media.video(tmp_path / "whole.mp4", frames).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])  # moov atom (at the end) lost
    faststart = media.video(tmp_path / "fs.mp4", frames, container_options={"movflags": "+faststart"}).read_bytes()
    (tmp_path / "cut_fs.mp4").write_bytes(faststart[: int(len(faststart) * 0.6)])  # header intact, data cut
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.avi").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a video")

    for name in ("cut.mp4", "noise.mp4", "empty.avi"):
        with pytest.raises(UnreadableVideo, match="cannot open") as err:
            read_video(tmp_path / name)
        assert err.value.path == tmp_path / name
    assert probe_video(tmp_path / "cut_fs.mp4")["num_frames"] == 12  # the header alone looks fine
    with pytest.raises(UnreadableVideo, match="truncated|decode error"):
        read_video(tmp_path / "cut_fs.mp4")
    with pytest.raises(UnreadableVideo, match="unsupported file type '.txt'"):
        read_video(tmp_path / "notes.txt")
    with pytest.raises(UnreadableVideo, match="file not found"):
        read_video(tmp_path / "missing.mp4")


def test_frame_folder_natural_order_and_formats(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for k in (10, 2, 1, 11, 3):  # written out of order; names sort wrongly as plain strings
        Image.fromarray(np.full((6, 10), 20 * k, np.uint8)).save(folder / f"frame{k}.png")
    Image.fromarray(np.full((6, 10, 3), 250, np.uint8)).save(folder / "frame12.jpg", quality=100)
    frames, meta = read_video(folder)
    assert frames.shape == (6, 6, 10, 3)
    assert frames[:5, 0, 0, 0].tolist() == [20, 40, 60, 200, 220]
    assert abs(int(frames[5, 0, 0, 0]) - 250) <= 2
    assert meta["format"] == "frames" and meta["files"][:3] == ["frame1.png", "frame2.png", "frame3.png"]
    picked, _ = read_video(folder, indices=[4, 0])
    assert picked[:, 0, 0, 0].tolist() == [220, 20]


def test_sixteen_bit_frames_scale_jointly(tmp_path):
    folder = tmp_path / "tif16"
    folder.mkdir()
    for k, value in enumerate((1000, 3000, 5000)):
        Image.fromarray(np.full((4, 5), value, np.uint16)).save(folder / f"{k}.tif")
    frames, _ = read_video(folder, percentiles=(0, 100))
    assert frames[:, 0, 0, 0].tolist() == [0, 128, 255]  # one scale for the whole video: no per-frame flicker


def test_frame_folder_of_mixed_sizes_is_unreadable(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a1.png")
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(folder / "a2.png")
    with pytest.raises(UnreadableVideo, match="differ in size"):
        read_video(folder)


def _windowed(hu: np.ndarray, centre: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 linear window to 8 bits (the reference the reader must match)."""
    scaled = ((hu - (centre - 0.5)) / (width - 1) + 0.5).clip(0, 1)
    return np.rint(scaled * 255)


def test_dicom_cine_window_rescale_and_monochrome1(tmp_path, media):
    stored = np.random.default_rng(0).integers(300, 800, (3, 8, 12)).astype(np.uint16)
    tags = dict(RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=0, WindowWidth=400)
    mono2 = media.dicom(tmp_path / "m2.dcm", stored, "MONOCHROME2", 12, **tags)
    mono1 = media.dicom(tmp_path / "m1.dcm", stored, "MONOCHROME1", 12, **tags)
    frames2, meta = read_video(mono2)
    frames1, _ = read_video(mono1)
    assert frames2.shape == (3, 8, 12, 3) and meta["num_frames"] == 3 and meta["photometric"] == "MONOCHROME2"
    expected = _windowed(stored * 2.0 - 1000, 0, 400)
    assert np.abs(frames2[..., 0].astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(frames1, 255 - frames2)  # MONOCHROME1: low values are white


def test_dicom_without_window_uses_robust_percentiles(tmp_path, media):
    stored = np.linspace(0, 4000, 2 * 20 * 20).reshape(2, 20, 20).astype(np.uint16)
    stored[0, 0, 0] = 65000  # one hot pixel must not squash the contrast of the rest
    frames, _ = read_video(media.dicom(tmp_path / "raw.dcm", stored, "MONOCHROME2", 16))
    grey = frames[..., 0].astype(int)
    assert grey[0, 0, 0] == 255 and grey[1, -1, -1] >= 250 and grey[0, 0, 1] <= 3
    assert np.all(np.diff(grey.reshape(-1)[1:]) >= 0)  # monotonic mapping


def test_dicom_rgb_and_ybr(tmp_path, media):
    rgb = media.pattern(4, 16, 20)
    frames, meta = read_video(media.dicom(tmp_path / "rgb.dcm", rgb, "RGB", 8))
    np.testing.assert_array_equal(frames, rgb)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    frames, meta = read_video(media.dicom(tmp_path / "ybr.dcm", ybr, "YBR_FULL", 8))
    assert meta["photometric"] == "YBR_FULL"
    assert np.abs(frames.astype(int) - rgb).max() <= 3


def test_dicom_series_ordered_by_instance_number(tmp_path, media):
    folder = tmp_path / "series"
    folder.mkdir()
    uid = "1.2.3.4.5"
    for name, number in zip("edcba", (1, 2, 3, 4, 5)):  # file names sort opposite to InstanceNumber
        media.dicom(folder / f"{name}.dcm", np.full((6, 7), 100 * number, np.uint16), "MONOCHROME2", 12,
                    InstanceNumber=number, SeriesInstanceUID=uid)
    cine = np.zeros((3, 6, 7), np.uint8)
    media.dicom(folder / "cine.dcm", cine, "MONOCHROME2", 8)  # multi-frame: a video of its own, not a slice
    frames, meta = read_video(folder, percentiles=(0, 100))
    assert meta["format"] == "dicom_series" and meta["num_frames"] == 5
    assert np.abs(frames[:, 0, 0, 0].astype(int) - [0, 64, 128, 191, 255]).max() <= 1
    assert meta["files"] == ["e.dcm", "d.dcm", "c.dcm", "b.dcm", "a.dcm"]
    middle, _ = read_video(folder, indices=[2], percentiles=(0, 100))
    assert middle.shape == (1, 6, 7, 3)


def test_random_bytes_dicom_and_extensionless_detection(tmp_path, media):
    bad = tmp_path / "noise.dcm"
    bad.write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(UnreadableVideo, match="not a readable DICOM"):
        read_video(bad)
    with pytest.raises(UnreadableVideo):
        probe_video(bad)
    plain = media.dicom(tmp_path / "IM0001", np.zeros((4, 4), np.uint8), "MONOCHROME2", 8)
    assert is_dicom_file(plain)
    assert read_video(plain)[0].shape == (1, 4, 4, 3)


def _nifti(path, data, zooms=None, units=None):
    image = nib.Nifti1Image(data, np.eye(4))
    if zooms:
        image.header.set_zooms(zooms)
    if units:
        image.header.set_xyzt_units(*units)
    nib.save(image, str(path))
    return path


def test_nifti_4d_time_last_and_orientation(tmp_path):
    data = np.zeros((8, 6, 4, 5), np.float32)  # x (right), y (anterior), z (superior), t
    data += np.arange(5, dtype=np.float32) * 10
    data[0, 5, :, :] += 500  # left-most, anterior-most column of voxels
    path = _nifti(tmp_path / "cine.nii.gz", data, zooms=(1, 1, 1, 0.5), units=("mm", "sec"))
    frames, meta = read_video(path, percentiles=(0, 100))
    assert frames.shape == (5, 6, 8, 3) and meta["num_frames"] == 5 and meta["fps"] == pytest.approx(2.0)
    assert frames[0, 0, 0, 0] > frames[0, 1, 1, 0]  # anterior at the top, left at the left
    assert np.all(np.diff(frames[:, 3, 3, 0].astype(int)) > 0)  # time runs along the last axis
    assert probe_video(path)["num_frames"] == 5


def test_nifti_3d_slices_along_axis(tmp_path):
    data = np.random.default_rng(0).random((8, 6, 4)).astype(np.float32)
    path = _nifti(tmp_path / "vol.nii", data)
    axial, meta = read_video(path, axis=2)
    sagittal, _ = read_video(path, axis=0)
    assert axial.shape == (4, 6, 8, 3) and sagittal.shape == (8, 4, 6, 3)
    assert probe_video(path, axis=0)["num_frames"] == 8
    with pytest.raises(UnreadableVideo, match="data.nifti_axis"):
        read_video(path, axis=3)
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(UnreadableVideo, match="NIfTI"):
        read_video(tmp_path / "bad.nii.gz")


def test_header_counting_one_extra_frame_is_tolerated(tmp_path, media, monkeypatch):
    import medsora.data.sources.video as video

    frames = media.pattern(6, 16, 16)
    path = media.video(tmp_path / "clip.mp4", frames)
    real = video._stream_meta
    monkeypatch.setattr(video, "_stream_meta", lambda stream: {**real(stream), "num_frames": 7})
    decoded, meta = read_video(path)
    assert len(decoded) == 6 and meta["num_frames"] == 6
    np.testing.assert_array_equal(read_video(path, indices=[4, 6])[0], frames[[4, 5]])  # header's last = decoder's last
    monkeypatch.setattr(video, "_stream_meta", lambda stream: {**real(stream), "num_frames": 8})
    with pytest.raises(UnreadableVideo, match="truncated: the header lists 8 frames, only 6 decode"):
        read_video(path)
