"""Folder layouts as users make them: multi-page TIFF, stray DICOMs, symlink loops, all-NaN volumes; and
``data check`` under a run's clip settings on the echo cine and fMRI volumes the packages ship."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import skimage
import tifffile
from nibabel.testing import data_path as nibabel_data
from pydicom.data import get_testdata_file

from medsora.data.check import main as check_main
from medsora.data.manifest import scan_layout
from medsora.data.sources import UnreadableVideo, read_video

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"


def test_multi_page_tiff_is_a_video_of_its_pages(tmp_path):
    folder = tmp_path / "microscopy"
    folder.mkdir()
    shutil.copy(SKIMAGE_DATA / "multipage.tif", folder / "stack.tif")  # 2 grey pages, 15×10
    shutil.copy(SKIMAGE_DATA / "multipage_rgb.tif", folder / "stack_rgb.tif")  # 2 planar float RGB pages
    frames = folder / "well"
    frames.mkdir()
    for k in range(3):
        tifffile.imwrite(frames / f"{k}.tif", np.full((6, 8), 40 * k, np.uint8))  # single-page frames
    entries, notes = scan_layout(tmp_path)
    assert {e.key: e.modality for e in entries} == {"microscopy/stack.tif": "microscopy",
                                                   "microscopy/stack_rgb.tif": "microscopy",
                                                   "microscopy/well": "microscopy"}
    video, meta = read_video(folder / "stack.tif")
    pages = tifffile.imread(SKIMAGE_DATA / "multipage.tif")
    assert video.shape == (2, 15, 10, 3) and meta["num_frames"] == 2 and meta["format"] == "tiff_stack"
    assert np.array_equal(video[..., 0], pages) and not np.array_equal(video[0], video[1])
    rgb, _ = read_video(folder / "stack_rgb.tif", indices=[1, 0])
    assert rgb.shape == (2, 10, 10, 3) and rgb.std(axis=(1, 2)).min() > 0  # colour pages, values spread
    well, meta = read_video(frames)
    assert well.shape == (3, 6, 8, 3) and [int(f[0, 0, 0]) for f in well] == [0, 40, 80]


def test_a_stray_dicom_beside_a_series_folder_is_left_out_and_reported(tmp_path, media, capsys):
    series = tmp_path / "ultrasound" / "series_1"
    series.mkdir(parents=True)
    for k in range(3):
        media.dicom(series / f"s{k}.dcm", np.full((4, 4), 50 * k, np.uint8), "MONOCHROME2", 8, InstanceNumber=k,
                    SeriesInstanceUID="1.2.3")
    media.dicom(tmp_path / "ultrasound" / "stray.dcm", np.zeros((4, 4), np.uint8), "MONOCHROME2", 8)
    entries, notes = scan_layout(tmp_path)
    assert {e.key: e.modality for e in entries} == {"ultrasound/series_1": "ultrasound"}
    assert len(notes) == 1 and notes[0].startswith("ultrasound: 1 single-frame DICOM file(s) beside sub-folders "
                                                   "(stray.dcm): left out")
    assert check_main(["check", str(tmp_path), "--no-progress"]) == 0
    assert "WARNING: 1 ambiguous or skipped parts of the folder layout" in capsys.readouterr().out


def test_symlink_loops_and_second_links_are_followed_once(tmp_path, media):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    (root / "endoscopy").mkdir(parents=True)
    outside.mkdir()
    for name in ("a", "b"):
        media.video(root / "endoscopy" / f"{name}.mp4", media.pattern(3, 16, 16))
    media.video(outside / "c.mp4", media.pattern(3, 16, 16))
    os.symlink("..", root / "endoscopy" / "loop")  # endoscopy/loop -> the data root: a loop
    os.symlink(root / "endoscopy" / "a.mp4", root / "endoscopy" / "again.mp4")  # a second name for a.mp4
    os.symlink(outside / "c.mp4", root / "endoscopy" / "c.mp4")  # a file on another disk: followed
    os.symlink(root / "endoscopy", root / "endo_link")  # a second name for a folder
    entries, notes = scan_layout(root)
    assert sorted(e.key for e in entries) == ["endoscopy/a.mp4", "endoscopy/b.mp4", "endoscopy/c.mp4"]
    assert len(notes) == 3 and any("endoscopy/loop: a link to" in n for n in notes)
    assert any("endoscopy/again.mp4: another link" in n for n in notes)


def test_an_all_nan_volume_is_bad_data_not_a_black_clip(tmp_path):
    nib.save(nib.Nifti1Image(np.full((8, 8, 4), np.nan, np.float32), np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(UnreadableVideo, match="no finite voxel value"):
        read_video(tmp_path / "nan.nii.gz")
    partial = np.arange(8 * 8 * 4, dtype=np.float32).reshape(8, 8, 4)
    partial[0] = np.nan  # a masked region: shown as the low end
    nib.save(nib.Nifti1Image(partial, np.eye(4)), tmp_path / "masked.nii.gz")
    frames, _ = read_video(tmp_path / "masked.nii.gz")
    assert frames.shape[0] == 4 and frames.max() > 0


def test_check_reports_short_videos_and_clips_under_the_run_settings(tmp_path, capsys):
    (tmp_path / "ultrasound").mkdir()
    (tmp_path / "mri").mkdir()
    shutil.copy(get_testdata_file("examples_ybr_color.dcm", download=False), tmp_path / "ultrasound" / "echo.dcm")
    shutil.copy(Path(nibabel_data) / "example4d.nii.gz", tmp_path / "mri" / "fmri.nii.gz")
    # the folder default: 17 frames at stride 3 span 49 frames; the echo has 30, the fMRI 2 time points
    assert check_main(["check", str(tmp_path), "--no-progress", "data.val_fraction=0"]) == 0
    out = capsys.readouterr().out
    assert "clips of 17 frames span 49 source frames; train 2 videos / 2 clips, val 0 videos / 0 clips" in out
    assert "2 of 2 videos are shorter than a clip (49 frames): padded by repeating their last frame (7–16 of 17 " \
           "frames repeated)" in out
    # stride 1, 5 frames, every window: 6 clips of the 30-frame echo, 1 (padded) of the fMRI
    assert check_main(["check", str(tmp_path), "data.num_frames=5", "data.frame_stride=1", "data.val_fraction=0",
                       "data.clips_per_video=all", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "train 2 videos / 7 clips" in out and "1 of 2 videos are shorter than a clip (5 frames)" in out
    assert "–30.0003 fps" in out  # the echo cine: FrameTime 33.333 ms
