"""The UCR/UEA archive in the catalog: discovery of aeon's bundled files, the archive's splits, label
order, normalisation from training data only, predict-time preparation, and no silent downloads."""

import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import gridseq.datasets as gd
from gridseq import defaults, models, train
from gridseq.data import builtin as catalog
from gridseq.data.builtin import ucr
from gridseq.errors import DataError

needs_aeon = pytest.mark.skipif(ucr.archive_folder() is None, reason="aeon (gridseq[ucr]) is not installed")

HEADER = "@problemName {name}\n@univariate true\n@classLabel true {labels}\n@data\n"


def _fake_archive(root):
    """An aeon-like data folder: one classification pair, one regression pair, one without a test file."""
    for name, labels, body in (("Good", "b a", "1,2,3:a\n3,2,1:b\n"), ("Lonely", "a", "1,2:a\n")):
        (root / name).mkdir()
        for split in ("TRAIN", "TEST") if name == "Good" else ("TRAIN",):
            (root / name / f"{name}_{split}.ts").write_text(HEADER.format(name=name, labels=labels) + body)
    (root / "Reg").mkdir()
    for split in ("TRAIN", "TEST"):
        (root / "Reg" / f"Reg_{split}.ts").write_text("@targetLabel true\n@data\n1,2:0.5\n")
    return root


def test_discover_keeps_classification_pairs_only(tmp_path):
    found = ucr.discover(_fake_archive(tmp_path))
    assert list(found) == ["good"]
    assert [p.name for p in found["good"]] == ["Good_TRAIN.ts", "Good_TEST.ts"]


def test_missing_aeon_is_a_clear_error_not_a_download(monkeypatch):
    monkeypatch.setattr(catalog, "_hints", {})
    monkeypatch.setattr(ucr, "archive_folder", lambda: None)
    ucr._register_archive()
    with pytest.raises(DataError, match=r"aeon is not installed.*pip install 'gridseq\[ucr\]'"):
        gd.load("ucr/notbundled")


def test_family_prefix_in_defaults():
    table = {("*", "*"): {"train": {"epochs": 1, "lr": 1.0}}, ("ucr/*", "*"): {"train": {"epochs": 2, "batch_size": 16}},
             ("ucr/gunpoint", "*"): {"train": {"epochs": 3}}, ("*", "fcn"): {"train": {"lr": 4.0}},
             ("ucr/*", "fcn"): {"model": {"dims": 1}}}
    assert defaults.lookup("ucr/GunPoint", "fcn", table) == {"train": {"epochs": 3, "lr": 4.0, "batch_size": 16}, "model": {"dims": 1}}
    assert defaults.lookup("ucr/arrowhead", "lstm", table)["train"] == {"epochs": 2, "lr": 1.0, "batch_size": 16}
    assert defaults.lookup("digits", "fcn", table) == {"train": {"epochs": 1, "lr": 4.0}, "model": {}}
    assert defaults.lookup("/data/ucr/x.ts", "fcn", table)["train"]["epochs"] == 1  # a path is no family
    assert defaults.family_pattern("ucr/") is None and defaults.family_pattern("a/b/c") is None


@needs_aeon
def test_every_bundled_classification_dataset_is_listed():
    names = [n for n in gd.names() if n.startswith("ucr/")]
    assert {"ucr/gunpoint", "ucr/italypowerdemand", "ucr/basicmotions", "ucr/japanesevowels", "ucr/arrowhead",
            "ucr/osuleaf", "ucr/acsf1", "ucr/pickupgesturewiimotez"} <= set(names)
    assert set(names) == {ucr.PREFIX + k for k in ucr.discover(ucr.archive_folder())}
    assert not any("covid3month" == n[4:] or "cardano" in n for n in names)  # regression problems are left out
    rows = {r["name"]: r for r in gd.describe()}
    assert rows["ucr/gunpoint"]["kind"] == "series" and (rows["ucr/gunpoint"]["train"], rows["ucr/gunpoint"]["val"],
                                                         rows["ucr/gunpoint"]["test"]) == (45, 5, 150)
    assert rows["ucr/japanesevowels"]["variable_length"] and not rows["ucr/gunpoint"]["variable_length"]


@needs_aeon
def test_archive_split_is_kept_and_val_follows_the_seed():
    a, b = gd.load("ucr/GunPoint", seed=0), gd.load("ucr/gunpoint", seed=1)  # case-insensitive
    assert (len(a.train), len(a.val), len(a.test)) == (45, 5, 150) and a.info.input_shape == (150, 1)
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.test.y, b.test.y)  # the archive's test split
    assert not torch.equal(a.val.x, b.val.x)
    assert a.val.y.bincount().tolist() in ([2, 3], [3, 2])  # stratified


@needs_aeon
def test_label_order_is_numeric_or_alphabetical():
    assert gd.load("ucr/pickupgesturewiimotez").info.class_names == tuple(str(i) for i in range(1, 11))
    assert gd.load("ucr/basicmotions").info.class_names == ("Badminton", "Running", "Standing", "Walking")


@needs_aeon
def test_variable_length_multivariate_has_true_lengths():
    ds = gd.load("ucr/japanesevowels")
    assert ds.info.variable_length and ds.info.input_shape == (29, 12) and ds.info.kind == "series"
    lengths = torch.cat([ds.train.lengths, ds.val.lengths, ds.test.lengths])
    assert lengths.min() == 7 and lengths.max() == 29
    for split in (ds.train, ds.test):
        mask = torch.arange(split.x.shape[1])[None, :] >= split.lengths[:, None]
        assert (split.x[mask] == 0).all()  # padding is exactly zero, not normalised garbage


@needs_aeon
def test_default_normalisation_is_per_series_for_univariate_and_per_channel_for_multivariate():
    assert gd.load("ucr/gunpoint").info.preprocessing["normalize"] == {"scope": "series"}
    assert gd.load("ucr/basicmotions").info.preprocessing["normalize"]["scope"] == "channel"


@needs_aeon
def test_series_normalisation_is_per_series_and_channel_uses_train_statistics_only():
    series = gd.load("ucr/basicmotions", seed=0, normalize="series")
    np.testing.assert_allclose(series.test.x.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(series.test.x.std(1, unbiased=False), 1, atol=1e-3)
    raw = gd.load("ucr/basicmotions", seed=0, normalize="none")
    channel = gd.load("ucr/basicmotions", seed=0, normalize="channel")
    stats = channel.info.preprocessing["normalize"]
    train_only = raw.train.x.reshape(-1, 6).double()
    np.testing.assert_allclose(stats["mean"], train_only.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], train_only.std(0, unbiased=False), rtol=1e-5)
    everything = torch.cat([raw.train.x, raw.val.x, raw.test.x]).reshape(-1, 6).double()
    assert not np.allclose(stats["mean"], everything.mean(0), rtol=1e-3)  # val/test did not leak in
    torch.testing.assert_close(channel.test.x, ((raw.test.x.double() - torch.tensor(stats["mean"])) / torch.tensor(stats["std"])).float())


@needs_aeon
@pytest.mark.parametrize("normalize", ["series", "channel"])
def test_predict_time_preparation_matches_the_dataset(normalize):
    ds = gd.load("ucr/italypowerdemand", normalize=normalize)
    test_file = ucr.discover(ucr.archive_folder())["italypowerdemand"][1]
    batch = gd.prepare_inputs(str(test_file), ds.info)  # a labelled .ts file: the labels are ignored
    torch.testing.assert_close(batch.x, ds.test.x)
    raw = gd.load("ucr/italypowerdemand", normalize="none").test.x
    torch.testing.assert_close(gd.prepare_inputs(raw.numpy(), ds.info).x, ds.test.x)
    with pytest.raises(DataError, match="exactly T=24"):
        gd.prepare_inputs(np.zeros((1, 30)), ds.info)


@needs_aeon
def test_unknown_archive_name_lists_the_bundled_ones():
    with pytest.raises(DataError, match=r"Did you mean 'ucr/gunpoint'\?.*bundled in aeon.*never downloads"):
        gd.load("ucr/gunpont")


@needs_aeon
@pytest.mark.slow
def test_gunpoint_fcn_reaches_95_percent():
    """FCN on GunPoint with the ucr/* defaults (fewer epochs): >= 0.95 test accuracy in about a minute."""
    started = time.perf_counter()
    data = gd.load("ucr/gunpoint", seed=0)
    train.seed_everything(0)
    model = models.create_for("fcn", data.info)
    settings = {**defaults.lookup("ucr/gunpoint", "fcn")["train"], "epochs": 120}
    result = train.fit(model, data, seed=0, progress=False, **settings)
    assert result.test["accuracy"] >= 0.95, result.test
    assert time.perf_counter() - started < 240


@needs_aeon
def test_loading_does_not_import_aeon():
    code = "import sys, gridseq.datasets as gd; gd.load('ucr/italypowerdemand'); print('aeon' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
