"""The config system: composition, overrides, and every error case names key and source."""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from medsora.config import ConfigError, compose, config_dir, list_configs, parse_cli


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    for group in ("data", "model", "experiment"):
        (tmp_path / group).mkdir()
    (tmp_path / "data" / "small.yaml").write_text("root: /videos\nsize: 32\n")
    (tmp_path / "model" / "a.yaml").write_text("hidden: 32\ndepth: 1\n")
    (tmp_path / "model" / "b.yaml").write_text("hidden: 48\n")
    (tmp_path / "experiment" / "base.yaml").write_text(
        "defaults:\n  - data: small\n  - model: a\nname: base\ntrainer:\n  max_steps: 7\n"
    )
    (tmp_path / "experiment" / "child.yaml").write_text(
        "defaults:\n  - experiment: base\nname: child\nmodel:\n  depth: 3\n"
    )
    return tmp_path


def test_experiment_composes_components_and_overrides(root):
    cfg = compose("base", root=root)
    assert (cfg.name, cfg.data.root, cfg.data.size, cfg.model.hidden, cfg.trainer.max_steps) == (
        "base", "/videos", 32, 32, 7)
    # untouched keys keep the schema defaults
    assert cfg.model.blocks == ["local_attn", "spatial_mamba", "temporal_mamba"]


def test_experiment_inheritance_and_self_order(root):
    cfg = compose("child", root=root)
    assert (cfg.name, cfg.model.depth, cfg.model.hidden, cfg.trainer.max_steps) == ("child", 3, 32, 7)


def test_command_line_overrides_and_group_swap(root):
    cfg = compose(overrides=["experiment=base", "data.size=128", "model=b", "model.blocks=[full_attn]",
                                  "align.tap=full_attn"], root=root)
    assert cfg.data.size == 128
    assert cfg.model.hidden == 48 and cfg.model.depth == 2  # b swaps in over a; depth back to... a's value is kept
    assert list(cfg.model.blocks) == ["full_attn"]


def test_result_is_read_only(root):
    cfg = compose("base", root=root)
    with pytest.raises(Exception):
        cfg.data.size = 3


def test_unknown_key_names_path_and_file(root):
    (root / "experiment" / "typo.yaml").write_text("defaults:\n  - data: small\nmodel:\n  hiden: 3\n")
    with pytest.raises(ConfigError) as err:
        compose("typo", root=root)
    assert "model.hiden" in str(err.value) and "typo.yaml" in str(err.value)


def test_unknown_key_in_component_file(root):
    (root / "model" / "bad.yaml").write_text("hidden: 32\nwidth: 9\n")
    with pytest.raises(ConfigError) as err:
        compose(overrides=["data.root=x", "model=bad"], root=root)
    assert "model.width" in str(err.value) and "bad.yaml" in str(err.value)


def test_wrong_type_names_key_and_command_line(root):
    with pytest.raises(ConfigError) as err:
        compose("base", overrides=["trainer.max_steps=many"], root=root)
    assert "trainer.max_steps" in str(err.value) and "command line" in str(err.value)


def test_bad_choice_names_key_and_file(root):
    (root / "model" / "order.yaml").write_text("scan_order: hilbert\n")
    with pytest.raises(ConfigError) as err:
        compose(overrides=["data.root=x", "model=order"], root=root)
    msg = str(err.value)
    assert "model.scan_order" in msg and "order.yaml" in msg and "spiral" in msg


def test_bad_item_in_list_choice(root):
    with pytest.raises(ConfigError, match="model.blocks"):
        compose("base", overrides=["model.blocks=[local_attn,mamba3]"], root=root)


def test_missing_required_key(root):
    with pytest.raises(ConfigError, match="data.root"):
        compose(root=root)


def test_missing_files_and_bad_defaults(root):
    with pytest.raises(ConfigError, match="experiment/nope.yaml"):
        compose("nope", root=root)
    (root / "experiment" / "badgroup.yaml").write_text("defaults:\n  - optimizer: adam\n")
    with pytest.raises(ConfigError, match="unknown defaults group 'optimizer'"):
        compose("badgroup", root=root)
    (root / "experiment" / "loop.yaml").write_text("defaults:\n  - experiment: loop\n")
    with pytest.raises(ConfigError, match="cycle"):
        compose("loop", root=root)
    (root / "experiment" / "broken.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        compose("broken", root=root)


def test_parse_cli_rejects_non_overrides():
    with pytest.raises(ConfigError, match="not a 'key=value'"):
        parse_cli(["--lr", "3"])
    assert parse_cli(["experiment=x", "model=b", "model.depth=2"]) == ("x", ["model=b"], ["model.depth=2"])


@pytest.mark.parametrize("name", list_configs("experiment"))
def test_every_shipped_experiment_composes(name, tmp_path):
    """Every experiment file in configs/ composes against the schema (no unknown keys, valid choices)."""
    try:
        cfg = compose(name)
    except ConfigError as err:  # experiments for real data leave paths (data.root, ...) to the command line
        required = str(err).split("required keys are not set: ")[1].split(" — ")[0].split(", ")
        assert set(required) <= {"data.root", "cond.text_encoder", "train.init_from", "align.teacher.encoder"}, required
        given = {key: tmp_path / key for key in required}  # paths that must exist do (a folder, or a file)
        for key, path in given.items():
            path.mkdir() if key != "train.init_from" else path.write_bytes(b"")
        cfg = compose(name, overrides=[f"{key}={path}" for key, path in given.items()])
        assert all(OmegaConf.select(cfg, key) == str(path) for key, path in given.items())
    assert OmegaConf.is_readonly(cfg)
    assert cfg.stage in ("vae", "diffusion", "demo")


def test_shipped_component_files_compose(tmp_path):
    encoder = f"align.teacher.encoder={tmp_path}"  # required by align=ofra_reference; must exist
    for group in ("data", "vae", "model", "diffusion", "align", "cond", "train", "trainer"):
        for name in list_configs(group):
            compose(overrides=[f"{group}={name}", "data.root=/x", encoder] if group != "data"
                    else [f"data={name}", "data.root=/x", encoder])
    assert (config_dir() / "experiment").is_dir()


def test_required_marker_overrides_an_inherited_default(tmp_path):
    """'???' in an experiment makes a key required even where the schema or a parent gives a default."""
    root = tmp_path / "configs"
    (root / "experiment").mkdir(parents=True)
    (root / "experiment" / "base.yaml").write_text("data:\n  root: demo\ntrain:\n  init_from: /parent.ckpt\n")
    (root / "experiment" / "child.yaml").write_text("defaults:\n  - experiment: base\ntrain:\n  init_from: ???\n")
    with pytest.raises(ConfigError, match="required keys are not set: train.init_from"):
        compose("child", root=root)
    stage1 = tmp_path / "stage1.ckpt"
    stage1.write_bytes(b"")  # train.init_from must name an existing file
    assert compose("child", [f"train.init_from={stage1}"], root=root).train.init_from == str(stage1)
    assert compose("child", ["train.init_from=null"], root=root).train.init_from is None


def test_bora_stages_name_their_required_paths():
    with pytest.raises(ConfigError, match="cond.text_encoder, data.root, train.init_from"):
        compose("instruct")
    with pytest.raises(ConfigError, match="cond.text_encoder"):
        compose("modal_align")


def test_bare_off_means_off_for_a_choice_that_offers_it(tmp_path):
    """YAML 1.1 reads a bare `off` as false; a choice field with an 'off' option takes it as 'off'
    (command line and files), other choice fields still reject it naming the key."""
    for value in ("off", "no", "'off'"):
        assert compose(overrides=["data.root=demo", f"vae.lpips={value}"]).vae.lpips == "off"
    with pytest.raises(ConfigError, match="vae.lpips"):
        compose(overrides=["data.root=demo", "vae.lpips=on"])  # no 'on' among its choices
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "nolpips.yaml").write_text("data:\n  root: demo\nvae:\n  lpips: off\n")
    assert compose("nolpips", root=tmp_path).vae.lpips == "off"
