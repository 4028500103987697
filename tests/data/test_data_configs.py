"""The data config files compose, and bad data settings fail at start-up naming the key."""
from __future__ import annotations

import pytest

from medsora.config import ConfigError, compose


def test_data_config_files_compose():
    demo = compose(overrides=["data=demo"]).data
    assert demo.root == "demo" and demo.num_frames == 17 and demo.demo_clips == 100
    folder = compose(overrides=["data=folder", "data.root=/data/colonoscopic"]).data
    assert (folder.size, folder.num_frames, folder.frame_stride) == (128, 17, 3)


@pytest.mark.parametrize("overrides,message", [
    (["data=folder"], r"required keys are not set: data\.root"),
    (["data=demo", "data.crop=diagonal"], r"'data\.crop' = 'diagonal' is not one of \['center', 'random'\]"),
    (["data=demo", "data.short_videos=drop"], r"'data\.short_videos' = 'drop' is not one of \['pad', 'skip'\]"),
    (["data=demo", "data.sizee=64"], r"command line \(data\.sizee\): invalid key 'data\.sizee'"),
    (["data=demo", "data.num_frames=many"], r"invalid key 'data\.num_frames'"),
    (["data=demo", "data.size=64", "data.train_crop=20"], r"data\.train_crop.*multiple of 8 no larger than data\.size = 64"),
    (["data=demo", "data.size=64", "data.train_crop=72"], r"data\.train_crop.*multiple of 8 no larger than data\.size = 64"),
    (["data=demo", "data.intensity_percentiles=oops"], r"invalid key 'data\.intensity_percentiles'"),
])
def test_bad_data_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        compose(overrides=overrides)
