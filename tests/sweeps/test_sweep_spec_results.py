"""Sweep files expand and validate before anything runs; results are read back from TensorBoard logs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

from medsora.config import ConfigError
from medsora.sweeps import results
from medsora.sweeps.spec import load_sweep, validate


@pytest.fixture(autouse=True)
def config_root(tmp_path, monkeypatch):
    """A private configs folder with one experiment, so the tests do not depend on the shipped ones."""
    root = tmp_path / "configs"
    (root / "experiment").mkdir(parents=True)
    (root / "experiment" / "base.yaml").write_text("name: base\ndata:\n  root: /videos\n")
    monkeypatch.setenv("MEDSORA_CONFIG_DIR", str(root))
    return root


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_grid_and_variants_expand_to_their_product(tmp_path):
    spec = load_sweep(_write(tmp_path, """
base: base
overrides: [trainer.max_steps=3]
variants:
  mamba: []
  attn: ["model.blocks=[full_attn]"]
grid:
  model.bidirectional: [true, false]
"""))
    names = [v.name for v in spec.variants]
    assert names == ["mamba_bidirectional-true", "mamba_bidirectional-false",
                     "attn_bidirectional-true", "attn_bidirectional-false"]
    attn_false = spec.variants[3]
    assert attn_false.overrides == ["trainer.max_steps=3", "model.blocks=[full_attn]", "model.bidirectional=false"]


def test_bad_key_fails_naming_the_variant_before_anything_runs(tmp_path, monkeypatch):
    spec = load_sweep(_write(tmp_path, """
base: base
variants:
  good: [model.depth=1]
  typo: [model.dept=1]
"""))
    with pytest.raises(ConfigError) as err:
        validate(spec)
    assert "variant 'typo'" in str(err.value) and "model.dept" in str(err.value)


def test_a_variant_whose_backbone_cannot_be_built_fails_before_anything_runs(tmp_path):
    """align.tap=spatial_mamba with a full-attention pattern is refused when the variant composes."""
    spec = load_sweep(_write(tmp_path, """
base: base
overrides: [stage=diffusion, model.depth=1, model.hidden=32, model.heads=2, model.headdim=8, model.d_state=8,
            align.enabled=true, align.target=flow]
variants:
  mamba: []
  attn: ["model.blocks=[full_attn]"]
  attn_tapped: ["model.blocks=[full_attn]", align.tap=full_attn]
"""))
    with pytest.raises(ConfigError, match="variant 'attn': .*'align.tap' = 'spatial_mamba' is not in model.blocks"):
        validate(spec)
    spec.variants.pop(1)
    assert list(validate(spec)) == ["mamba", "attn_tapped"]


@pytest.mark.parametrize("text, match", [
    ("variants: {a: []}", "'base' must name an experiment"),
    ("base: base\ndescription: nothing", "no variants"),
    ("base: base\ngrid: {model.depth: []}", "non-empty list"),
    ("base: base\nvariants: {a: [depth]}", "key=value"),
    ("base: base\nvariants: {a: []}\nextra: 1", "unknown sweep keys"),
    ("base: base\nvariants: {a: []}\nevaluate: {metric: fvd}", "'evaluate' keys"),
])
def test_malformed_sweep_files(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_sweep(_write(tmp_path, text))


def test_summary_from_known_logs(tmp_path):
    run = tmp_path / "v" / "tb"
    writer = SummaryWriter(str(run))
    for step, loss in enumerate([1.0, 0.5, 0.25, 0.125]):
        writer.add_scalar("train/loss", loss, step)
        writer.add_scalar("perf/step_time_s", [0.3, 0.1, 0.2, 0.9][step], step)
        writer.add_scalar("perf/step_cpu_s", [0.05, 0.04, 0.07, 0.06][step], step)
        writer.add_scalar("perf/peak_mem_mb", 100.0 + step, step)
    writer.add_scalar("val/loss", 0.7, 3)
    writer.close()
    summary = results.summarize_run(tmp_path / "v")
    assert summary["train_loss"] == pytest.approx(0.125)  # 10 % of 4 points: the last one
    assert summary["train_denoise"] is None  # not logged: the column stays empty
    assert summary["val_loss"] == pytest.approx(0.7)
    assert summary["step_time_s"] == pytest.approx(0.3)  # median of 0.1, 0.2, 0.3, 0.9 (upper)
    assert summary["step_cpu_s"] == pytest.approx(0.06)
    assert summary["peak_mem_mb"] == pytest.approx(103.0)
    assert [v for _, v in results.loss_curve(tmp_path / "v")] == [1.0, 0.5, 0.25, 0.125]


def test_final_training_loss_is_a_tail_mean_and_curves_prefer_denoise(tmp_path):
    writer = SummaryWriter(str(tmp_path / "v" / "tb"))
    for step in range(40):
        writer.add_scalar("train/loss", 1.0 + (step % 2), step)  # noisy total: 1, 2, 1, 2, ...
        writer.add_scalar("train/denoise", 100.0 - step, step)
    writer.add_scalar("val/denoise", 0.3, 39)
    writer.close()
    summary = results.summarize_run(tmp_path / "v")
    assert summary["train_loss"] == pytest.approx(1.5)  # mean of the last 4 of 40 points
    assert summary["train_denoise"] == pytest.approx((64 + 63 + 62 + 61) / 4)
    assert summary["val_denoise"] == pytest.approx(0.3)
    assert results.loss_curve(tmp_path / "v")[-1] == (39, 61.0)


def test_tables_and_plot(tmp_path):
    rows = [{"variant": "a", "status": "done", "params_m": 1.5, "gflops": 2.5, "train_loss": 0.1, "fvd": 300.0,
             "cpu_s": 60.0},
            {"variant": "b", "status": "failed", "params_m": 2.0, "cpu_s": 30.0}]
    footer = results.cpu_footer(rows, [90.0, float("nan")], jobs=2)
    assert footer.startswith("CPU time") and "VAE + encode cache 90 s, variants 90 s, total 180 s = 3.0 CPU-min" in footer
    csv_path, md_path = results.write_tables(rows, tmp_path, footer=footer)
    md = md_path.read_text().splitlines()
    assert md[-1] == footer
    assert md[0].startswith("| variant | status | params_m | gflops") and md[0].rstrip().endswith("fvd |")
    assert "| a | done | 1.5 | 2.5 | 0.1 |" in md[2] and md[3].count("–") >= 4
    assert csv_path.read_text().splitlines()[1].startswith("a,done,1.5,2.5,0.1")
    png = results.plot_curves({"a": [(0, 1.0), (1, 0.5)], "b": []}, tmp_path / "c.png", "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_finished_variants_are_skipped_on_rerun(tmp_path, monkeypatch):
    from medsora.sweeps import runner

    spec = load_sweep(_write(tmp_path, "base: base\nvariants: {a: [], b: [model.depth=1]}\n"))
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / runner.RESULT_FILE).write_text(json.dumps({"variant": "a", "status": "done", "train_loss": 0.5}))
    launched = []

    def fake_variant(spec_, variant, out_dir, params, extra=(), env=None):
        launched.append(variant.name)
        return {"variant": variant.name, "status": "done", "train_loss": 0.25}

    monkeypatch.setattr(runner, "run_variant", fake_variant)
    monkeypatch.setattr(runner, "backbone_cost", lambda cfg: {"params_m": 0.001, "gflops": 0.0})
    rows = runner.run_sweep(spec, out)
    assert launched == ["b"]
    assert rows[0]["status"].startswith("done (skipped") and rows[0]["train_loss"] == 0.5
    assert (out / "results.md").is_file() and (out / "loss_curves.png").is_file()


@pytest.mark.parametrize("name", ["demo", "backbone_blocks", "scan_orders", "components", "paper_ablations",
                                  "paper_ablations_demo"])
def test_shipped_sweeps_validate(name, monkeypatch, tmp_path):
    """Every shipped sweep's variants compose against the real configs (real-data ones given a folder)."""
    monkeypatch.delenv("MEDSORA_CONFIG_DIR")
    from medsora.config import config_dir

    spec = load_sweep(config_dir() / "sweep" / f"{name}.yaml")
    for folder in ("vae", "dino"):
        (tmp_path / folder).mkdir()  # paths in the config must exist
    extra = [] if name.endswith("demo") else ["data.root=/data/videos", f"vae.pretrained={tmp_path / 'vae'}",
                                              f"align.teacher.encoder={tmp_path / 'dino'}"]
    configs = validate(spec, extra)
    assert len(configs) == len(spec.variants) >= 4
    assert spec.prepare_vae in ("vae_demo", "vae_medsora")
    if name == "backbone_blocks":
        assert list(configs["full_attn"].model.blocks) == ["full_attn"]
    if name.startswith("paper_ablations"):  # parameter-matched to medsora within ±5 %
        from medsora.backbone.cost import count_parameters

        sizes = {n: count_parameters(c.model, c.vae.latent_channels) for n, c in configs.items()}
        assert all(abs(v - sizes["medsora"]) <= 0.05 * sizes["medsora"] for v in sizes.values()), sizes
    if name == "components":
        assert {(c.align.enabled, c.vae.freq_comp) for c in configs.values()} == {
            (True, True), (True, False), (False, True), (False, False)}


def test_one_vae_and_cache_per_distinct_vae_setting(tmp_path, monkeypatch, config_root):
    from medsora.sweeps import runner

    (config_root / "experiment" / "vae.yaml").write_text("name: v\nstage: vae\ndata:\n  root: /videos\n")
    spec = load_sweep(_write(tmp_path, """
base: base
prepare_vae: vae
prepare_overrides: [trainer.max_steps=7]
grid:
  align.enabled: [true, false]
  vae.freq_comp: [true, false]
"""))
    prepared, launched = [], {}

    def fake_prepare(vae_experiment, base, overrides, common, out_dir, env=None, train_overrides=()):
        assert list(train_overrides) == ["trainer.max_steps=7"]  # the VAE training's own overrides
        prepared.append((vae_experiment, tuple(overrides)))
        return {"overrides": [f"vae.ckpt=/ckpt/{len(prepared)}", f"data.cache=/cache/{len(prepared)}"],
                "cpu_s": 1.0}

    def fake_variant(spec_, variant, out_dir, params, extra=(), env=None):
        launched[variant.name] = list(extra)
        return {"variant": variant.name, "status": "done"}

    monkeypatch.setattr(runner, "prepare", fake_prepare)
    monkeypatch.setattr(runner, "run_variant", fake_variant)
    monkeypatch.setattr(runner, "backbone_cost", lambda cfg: {"params_m": 1e-6, "gflops": 0.0})
    runner.run_sweep(spec, tmp_path / "out", extra=["data.size=48"])
    # the VAE trains on the denoisers' clips: the data keys of the composed base (with the sweep's overrides)
    assert [p[:2] for _, p in prepared] == [("vae.freq_comp=true", 'data.root="/videos"'),
                                            ("vae.freq_comp=false", 'data.root="/videos"')]
    assert all("data.size=48" in p and not any(o.startswith(("data.crop", "data.batch_size")) for o in p)
               for _, p in prepared)
    assert launched["enabled-false_freq_comp-true"] == ["data.size=48", "vae.ckpt=/ckpt/1", "data.cache=/cache/1"]
    assert launched["enabled-true_freq_comp-false"] == ["data.size=48", "vae.ckpt=/ckpt/2", "data.cache=/cache/2"]


def test_prepare_vae_must_be_a_vae_stage(tmp_path):
    spec = load_sweep(_write(tmp_path, "base: base\nprepare_vae: base\nvariants: {a: []}\n"))
    with pytest.raises(ConfigError, match="has stage 'diffusion', not 'vae'"):
        validate(spec)


def test_match_params_sizes_baselines_within_five_percent(tmp_path, monkeypatch):
    from medsora.backbone.cost import count_parameters

    monkeypatch.delenv("MEDSORA_CONFIG_DIR")
    spec = load_sweep(_write(tmp_path, """
base: diffusion_demo
match_params: medsora
variants:
  medsora: []
  full_attn: ["model.blocks=[full_attn]", align.tap=full_attn]
  divided_attn: ["model.blocks=[spatial_attn,temporal_attn]", align.tap=spatial_attn]
  deep_attn: ["model.blocks=[full_attn]", align.tap=full_attn, model.depth=1, model.heads=4]
"""))
    configs = validate(spec)
    target = count_parameters(configs["medsora"].model, configs["medsora"].vae.latent_channels)
    for name, cfg in configs.items():
        own = count_parameters(cfg.model, cfg.vae.latent_channels)
        assert abs(own - target) <= 0.05 * target, (name, own, target)
    assert any(o.startswith("model.hidden=") for o in spec.variants[1].overrides)
    assert spec.variants[0].overrides == []  # the reference is never touched


def test_match_params_must_name_a_variant(tmp_path):
    with pytest.raises(ConfigError, match="match_params: 'nope' is not a variant"):
        load_sweep(_write(tmp_path, "base: diffusion_demo\nmatch_params: nope\nvariants:\n  a: []\n"))
