"""gridseq's .ts reader on hand-written files: every variant of the format, missing values, and errors
that name the file and line; plus user .ts files loaded as datasets."""

import numpy as np
import pytest

import gridseq.datasets as gd
from gridseq.data.readers.ts_format import count_cases, parse_ts, read_header, read_ts
from gridseq.errors import ConfigError, DataError

UNIVARIATE = """\
# a comment
% another comment style used in the archive
@problemName Toy
@timeStamps false
@univariate true
@equalLength true
@seriesLength 3
@classLabel true 1 2 10
@data
1,2,3:1
4,5,6:10

7,8,9:2
"""

MULTIVARIATE_UNEQUAL = """\
@problemName Walk
@timestamps false
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
0.1,0.4,0.9:1.0,1.1,1.3:up
0.9,0.5:0.2,0.1:down
"""


def test_univariate_equal_length():
    d = parse_ts(UNIVARIATE)
    assert d.name == "Toy" and d.x.shape == (3, 3, 1) and d.lengths is None and d.x.dtype == np.float32
    assert d.x[:, :, 0].tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert d.labels == ["1", "10", "2"] and d.class_labels == ("1", "2", "10")


def test_multivariate_unequal_length_keeps_channels_apart_and_pads_with_zeros():
    d = parse_ts(MULTIVARIATE_UNEQUAL)
    assert d.x.shape == (2, 3, 2) and d.lengths.tolist() == [3, 2]
    np.testing.assert_allclose(d.x[0], [[0.1, 1.0], [0.4, 1.1], [0.9, 1.3]])
    np.testing.assert_allclose(d.x[1], [[0.9, 0.2], [0.5, 0.1], [0.0, 0.0]])
    assert d.labels == ["up", "down"]


def test_unlabelled_file_for_prediction():
    d = parse_ts("@classLabel false\n@data\n1,2\n3,4\n")
    assert d.labels is None and d.x.shape == (2, 2, 1)
    assert parse_ts("@univariate true\n@data\n1,2\n").labels is None  # no @classLabel line at all


def test_trailing_missing_steps_end_the_series():
    # the archive pads unequal lengths with NaN (PickupGestureWiimoteZ) or '?'
    d = parse_ts("@classLabel true a\n@data\n1,2,3,?,?:a\n1,2,NaN,NaN,NaN:a\n1,2,3,4,5:a\n")
    assert d.lengths.tolist() == [3, 2, 5] and d.filled == 0


def test_interior_and_leading_gaps_are_interpolated_per_channel():
    d = parse_ts("@dimensions 2\n@classLabel true a\n@data\n?,2,?,6:10,?,30,?:a\n")
    np.testing.assert_allclose(d.x[0], [[2, 10], [2, 20], [4, 30], [6, 30]])  # leading/trailing gaps hold the nearest value
    assert d.lengths is None and d.filled == 4


def test_missing_error_names_file_line_and_place():
    with pytest.raises(DataError, match=r"toy.ts, line 3, dimension 1, step 2: missing value"):
        parse_ts("@classLabel true a\n@data\n1,?,3:a\n", source="toy.ts", missing="error")
    # trailing all-missing steps are padding, not gaps: fine even with missing="error"
    assert parse_ts("@classLabel true a\n@data\n1,2,?:a\n", missing="error").x.shape == (1, 2, 1)
    with pytest.raises(ConfigError, match="missing"):
        parse_ts(UNIVARIATE, missing="zero")


def test_a_channel_without_values_is_an_error():
    with pytest.raises(DataError, match="f.ts, line 4: dimension 2 has no values"):
        parse_ts("@dimensions 2\n@classLabel true a\n@data\n1,2:?,?:a\n", source="f.ts")


@pytest.mark.parametrize(("text", "match"), [
    ("@classLabel true a b\n@data\n1,2,x:a\n", r"f.ts, line 3, dimension 1, step 3: expected a number or '\?', got 'x'"),
    ("@classLabel true a b\n@data\n1,2:c\n", r"line 3: label 'c' is not one of the @classLabel labels \(a b\)"),
    ("@classLabel true a\n@data\n1,2\n", r"line 3: expected 'values:label'"),
    ("@dimensions 2\n@classLabel true a\n@data\n1,2:a\n", r"line 4: 1 dimension\(s\).*header says 2"),
    ("@equalLength true\n@classLabel true a\n@data\n1,2:a\n1,2,3:a\n", r"line 5: @equalLength true, but this case has 3 steps"),
    ("@equalLength true\n@seriesLength 3\n@data\n1,2\n", r"line 4: @seriesLength 3, but this case has 2 steps"),
    ("@classLabel true a\n@data\n1,2:3,4:a\n1,2:a\n", r"line 4: 1 dimensions, but the first case has 2"),
    ("@classLabel true\n@data\n1:a\n", r"@classLabel true needs the list of class labels"),
    ("@univariate maybe\n@data\n1\n", r"line 1: @univariate must be followed by true or false"),
    ("@dimensions two\n@data\n1\n", r"line 1: @dimensions must be a positive whole number"),
    ("@classLabel true a\n1,2:a\n", r"line 2: expected a header line"),
    ("@classLabel true a\n", r"no '@data' line"),
    ("@classLabel true a\n@data\n\n", r"no cases after @data"),
    ("@timeStamps true\n@classLabel true a\n@data\n(0,1),(1,2):a\n", r"@timeStamps true is not supported"),
    ("@targetLabel true\n@data\n1,2:0.5\n", r"regression file"),
    ("@classLabel true a\n@data\n1,inf:a\n", r"step 2: 'inf' is not finite"),
])
def test_malformed_input_names_file_and_line(text, match):
    with pytest.raises(DataError, match=match):
        parse_ts(text, source="f.ts")


def test_header_and_case_count_without_parsing(tmp_path):
    path = tmp_path / "Toy_TRAIN.ts"
    path.write_text(UNIVARIATE)
    header = read_header(path)
    assert header.classification and header.class_labels == ("1", "2", "10") and header.series_length == 3
    assert count_cases(path) == 3
    assert read_ts(path).x.shape == (3, 3, 1)


def test_unreadable_file(tmp_path):
    path = tmp_path / "bin.ts"
    path.write_bytes(b"\xff\xfe\x00@data")
    with pytest.raises(DataError, match="cannot read"):
        read_ts(path)


# ---------------------------------------------------------------- user .ts files as datasets


def _write_pair(tmp_path, n_train=20, n_test=8, t=12):
    rng = np.random.default_rng(0)

    def lines(n):
        rows = []
        for i in range(n):
            label = ("2", "10")[i % 2]
            values = rng.normal(size=t) * 3 + 5 + (4 if label == "10" else 0)
            rows.append(",".join(f"{v:.4f}" for v in values) + ":" + label)
        return "\n".join(rows) + "\n"

    head = f"@problemName Toy\n@univariate true\n@equalLength true\n@seriesLength {t}\n@classLabel true 10 2\n@data\n"
    (tmp_path / "Toy_TRAIN.ts").write_text(head + lines(n_train))
    (tmp_path / "Toy_TEST.ts").write_text(head + lines(n_test))
    return tmp_path / "Toy_TRAIN.ts"


def test_user_ts_finds_its_test_file_and_orders_numeric_labels(tmp_path):
    ds = gd.load(_write_pair(tmp_path), seed=0)
    assert ds.info.kind == "series" and ds.info.class_names == ("2", "10")  # numerically, not "10" < "2"
    assert len(ds.test) == 8 and len(ds.train) + len(ds.val) == 20 and len(ds.val) == 2
    assert ds.info.preprocessing["normalize"] == {"scope": "series"}
    x = ds.train.x[..., 0]
    np.testing.assert_allclose(x.mean(1), 0, atol=1e-5)  # every series z-normalised on its own
    np.testing.assert_allclose(x.std(1, unbiased=False), 1, atol=1e-4)


def test_user_ts_explicit_test_path_and_single_file(tmp_path):
    train = _write_pair(tmp_path)
    single = tmp_path / "only.ts"
    single.write_text(train.read_text())
    ds = gd.load(single, seed=0)
    assert len(ds.test) == 4 and len(ds.train) + len(ds.val) == 16  # a stratified 20% test split
    ds = gd.load(single, seed=0, test_path=str(tmp_path / "Toy_TEST.ts"))
    assert len(ds.test) == 8
    with pytest.raises(DataError, match="test_path .* does not exist"):
        gd.load(single, test_path=str(tmp_path / "nope.ts"))
    with pytest.raises(ConfigError, match="unknown option 'norm'"):
        gd.load(single, norm="series")


def test_channel_statistics_come_from_the_training_split_only(tmp_path):
    train = _write_pair(tmp_path)
    test = tmp_path / "Toy_TEST.ts"
    # a test file far from the training data: if it leaked into the statistics, the mean would move
    test.write_text("".join(line if line.startswith("@") else ",".join(["1000"] * 12) + ":" + line.rsplit(":", 1)[1]
                            for line in test.read_text().splitlines(keepends=True)))
    raw = gd.load(train, seed=0, normalize="none")
    channel = gd.load(train, seed=0, normalize="channel")
    stats = channel.info.preprocessing["normalize"]
    np.testing.assert_allclose(stats["mean"], [raw.train.x.double().mean()], rtol=1e-6)  # train, not val or test
    np.testing.assert_allclose(stats["std"], [raw.train.x.double().std(unbiased=False)], rtol=1e-5)
    assert stats["mean"][0] < 20
    np.testing.assert_allclose(channel.test.x, (raw.test.x - stats["mean"][0]) / stats["std"][0], rtol=1e-5)
