"""Layout checks (gridseq.shapes): every common layout mistake is caught at the door with a ShapeError
that says what was expected and how to fix it; valid inputs pass through unchanged."""

import contextlib
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gridseq.errors import GridseqError, ShapeError
from gridseq.shapes import check_finite, check_image, check_lengths, check_sequence, check_tokens, check_video


@contextlib.contextmanager
def raises_shape(*fragments: str):
    """pytest.raises(ShapeError) whose message must contain every fragment (plain text, not regex)."""
    with pytest.raises(ShapeError) as info:
        yield info
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in message: {info.value}"


def test_shape_error_is_a_value_error_and_a_gridseq_error():
    with pytest.raises(ValueError):
        check_sequence(torch.zeros(5, 3))
    assert issubclass(ShapeError, GridseqError)


# ---------------------------------------------------------------- sequences (B, T, F)


def test_time_batch_feature_transposition_is_detected_from_lengths():
    x = torch.randn(40, 32, 8)  # (T, B, F) by mistake
    lengths = torch.randint(1, 41, (32,))
    with raises_shape("(40, 32, 8)", "(time, batch", "(batch, time", "x.transpose(0, 1)"):
        check_sequence(x, lengths)


def test_transposition_is_detected_for_tokens_and_video():
    with raises_shape("(time, batch", "x.transpose(0, 1)"):
        check_tokens(torch.randint(0, 5, (12, 4)), torch.tensor([12, 3, 7, 1]))
    with raises_shape("(time, batch", "x.transpose(0, 1)"):
        check_video(torch.randn(6, 2, 3, 4, 4), torch.tensor([6, 4]))


def test_sequence_without_batch_dimension():
    with raises_shape("(B, T, 8)", "batch dimension is missing", "x.unsqueeze(0)"):
        check_sequence(torch.randn(10, 8), features=8)


def test_univariate_series_without_feature_dimension():
    with raises_shape("(B, T, 1)", "x.unsqueeze(-1)"):
        check_sequence(torch.randn(4, 40), features=1)


def test_batch_features_time_layout():
    with raises_shape("(B, T, 3)", "(4, 3, 50)", "(batch, features, time)", "x.transpose(1, 2)"):
        check_sequence(torch.randn(4, 3, 50), features=3)


def test_wrong_number_of_features_names_both():
    with raises_shape("F=3", "(4, 50, 5)"):
        check_sequence(torch.randn(4, 50, 5), features=3)


def test_sequence_of_wrong_rank():
    with raises_shape("(B, T, F)", "4D"):
        check_sequence(torch.randn(2, 3, 4, 5))


def test_integer_sequence_suggests_float_or_vocab_size():
    with raises_shape("(B, T, F)", "torch.int64", "x.float()", "vocab_size"):
        check_sequence(torch.randint(0, 9, (2, 5, 3)))


def test_token_ids_given_to_a_sequence_model():
    # (B, T) int ids where (B, T, F) floats were expected: not "add a batch dimension"
    with raises_shape("(B, T, F)", "token ids", "vocab_size"):
        check_sequence(torch.randint(0, 9, (4, 10)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_in_sequences(bad):
    x = torch.randn(2, 5, 3)
    x[1, 2, 0] = bad
    with raises_shape("NaN", "Inf", "expected finite", "nan_to_num"):
        check_sequence(x)


def test_nan_count_is_reported():
    x = torch.zeros(3, 4)
    x[0, 0] = x[1, 1] = float("nan")
    x[2, 2] = float("inf")
    with raises_shape("2 NaN and 1 Inf"):
        check_finite(x)


def test_finite_values_whose_sum_overflows_pass_and_opposite_infinities_do_not():
    big = torch.full((4,), 3e38)  # finite, but their sum is inf: the exact look decides
    assert check_finite(big) is big
    half = torch.full((3,), 6e4, dtype=torch.float16)
    assert check_finite(half) is half
    with raises_shape("0 NaN and 2 Inf"):  # +inf + -inf sums to NaN
        check_finite(torch.tensor([float("inf"), -float("inf"), 1.0]))


def test_check_finite_ignores_integer_tensors():
    ids = torch.tensor([1, 2, 3])
    assert check_finite(ids) is ids


@pytest.mark.parametrize("x", [[[0.0, 1.0]], (1, 2), None, 3.0])
def test_non_tensor_input(x):
    with raises_shape("torch.Tensor", "torch.as_tensor"):
        check_sequence(x)
    with raises_shape("torch.Tensor"):
        check_image(x)
    with raises_shape("torch.Tensor"):
        check_tokens(x)


def test_numpy_array_input_names_its_type():
    np = pytest.importorskip("numpy")
    with raises_shape("ndarray", "torch.as_tensor"):
        check_sequence(np.zeros((2, 3, 4), dtype="float32"))


def test_valid_sequence_passes_through():
    x = torch.randn(3, 7, 2)
    out, lengths = check_sequence(x, torch.tensor([7, 1, 4], dtype=torch.int32), features=2)
    assert out is x
    assert lengths.dtype == torch.int64 and lengths.device.type == "cpu"
    assert lengths.tolist() == [7, 1, 4]
    assert check_sequence(x)[1] is None


# ---------------------------------------------------------------- lengths


def test_lengths_longer_than_time():
    with raises_shape("<= T=5", "got a length of 9", "(batch, time"):
        check_sequence(torch.randn(3, 5, 2), torch.tensor([5, 9, 2]))


def test_zero_length():
    with raises_shape(">= 1", "got a length of 0", "drop empty sequences"):
        check_sequence(torch.randn(3, 5, 2), torch.tensor([5, 0, 2]))


def test_negative_length():
    with raises_shape(">= 1", "-2"):
        check_lengths(torch.tensor([3, -2]), 2, 5)


def test_lengths_do_not_match_batch():
    with raises_shape("2 entries", "B=3", "(B,) = (3,)"):
        check_sequence(torch.randn(3, 5, 2), torch.tensor([5, 4]))


def test_float_lengths():
    with raises_shape("integers (int64)", "torch.float32", "lengths.long()"):
        check_sequence(torch.randn(3, 5, 2), torch.tensor([5.0, 4.0, 1.0]))


def test_bool_lengths():
    with raises_shape("integers (int64)", "torch.bool"):
        check_lengths(torch.tensor([True, True]), 2, 5)


def test_two_dimensional_lengths():
    with raises_shape("(B,) = (3,)", "(3, 1)", "one length per sequence"):
        check_sequence(torch.randn(3, 5, 2), torch.tensor([[5], [4], [1]]))


def test_lengths_not_a_tensor():
    with raises_shape("lengths must be a torch.Tensor", "list"):
        check_lengths([3, 4], 2, 5)


def test_lengths_none_stays_none():
    assert check_lengths(None, 4, 10) is None


def test_lengths_in_int32_come_back_int64_on_cpu():
    out = check_lengths(torch.tensor([1, 5], dtype=torch.int32), 2, 5)
    assert out.dtype == torch.int64 and out.device.type == "cpu" and out.tolist() == [1, 5]


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 6),
    t=st.integers(1, 12),
    f=st.integers(1, 4),
    data=st.data(),
)
def test_property_any_valid_batch_with_lengths_in_range_passes(b, t, f, data):
    lengths = torch.tensor(data.draw(st.lists(st.integers(1, t), min_size=b, max_size=b)))
    x = torch.randn(b, t, f)
    out, checked = check_sequence(x, lengths, features=f)
    assert out is x
    assert checked.dtype == torch.int64 and torch.equal(checked, lengths)


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 6), t=st.integers(1, 12), data=st.data())
def test_property_any_length_beyond_time_fails(b, t, data):
    lengths = data.draw(st.lists(st.integers(1, t), min_size=b, max_size=b))
    i = data.draw(st.integers(0, b - 1))
    lengths[i] = data.draw(st.integers(t + 1, 3 * t + 5))
    with pytest.raises(ShapeError):
        check_sequence(torch.randn(b, t, 2), torch.tensor(lengths))


@settings(max_examples=30, deadline=None)
@given(b=st.integers(2, 6), t=st.integers(2, 12), f=st.integers(1, 4))
def test_property_time_first_input_with_lengths_is_always_caught(b, t, f):
    if b == t:
        return  # a square (T, B) batch is indistinguishable from (B, T)
    lengths = torch.full((b,), t)
    with raises_shape("x.transpose(0, 1)"):
        check_sequence(torch.randn(t, b, f), lengths)


# ---------------------------------------------------------------- token ids (B, T)


def test_float_tokens():
    with raises_shape("int64 token ids", "(B, T)", "torch.float32", "x.long()", "input_size"):
        check_tokens(torch.rand(2, 5))


def test_tokens_without_batch_dimension():
    with raises_shape("(B, T)", "batch dimension is missing", "x.unsqueeze(0)"):
        check_tokens(torch.tensor([1, 2, 3]))


def test_tokens_of_wrong_rank():
    with raises_shape("(B, T)", "3D"):
        check_tokens(torch.zeros(2, 3, 4, dtype=torch.long))


def test_token_ids_beyond_vocabulary():
    with raises_shape("[0, vocab_size=20)", "from 0 to 25", "vocabulary"):
        check_tokens(torch.tensor([[0, 3, 25]]), vocab_size=20)


def test_negative_token_ids():
    with raises_shape("must be >= 0", "-1"):
        check_tokens(torch.tensor([[0, -1, 2]]))
    with raises_shape("[0, vocab_size=20)", "-1"):
        check_tokens(torch.tensor([[0, -1, 2]]), vocab_size=20)


def test_valid_tokens_come_back_int64():
    ids = torch.tensor([[1, 2, 19], [0, 0, 5]], dtype=torch.int32)
    out, lengths = check_tokens(ids, torch.tensor([3, 1]), vocab_size=20)
    assert out.dtype == torch.int64 and torch.equal(out, ids.long())
    assert lengths.tolist() == [3, 1] and lengths.dtype == torch.int64


# ---------------------------------------------------------------- images (B, C, H, W)


def test_channels_last_image_without_known_channels_gets_both_fixes():
    with raises_shape("batch dimension is missing", "x.unsqueeze(0)", "x.permute(2, 0, 1).unsqueeze(0)"):
        check_image(torch.rand(16, 16, 3))


def test_image_without_batch_dimension():
    with raises_shape("(B, 3, H, W)", "batch dimension is missing", "x.unsqueeze(0)"):
        check_image(torch.rand(3, 16, 16), channels=3)


def test_single_channels_last_image():
    with raises_shape("(B, 3, H, W)", "channels-last", "x.permute(2, 0, 1).unsqueeze(0)"):
        check_image(torch.rand(16, 16, 3), channels=3)


def test_batched_channels_last_images():
    with raises_shape("(B, 3, H, W)", "(8, 16, 16, 3)", "channels-last", "x.permute(0, 3, 1, 2)"):
        check_image(torch.rand(8, 16, 16, 3), channels=3)


def test_grayscale_batch_without_channel_dimension():
    with raises_shape("(B, 1, H, W)", "x.unsqueeze(1)"):
        check_image(torch.rand(8, 28, 28), channels=1)


def test_wrong_channel_count():
    with raises_shape("(B, 3, H, W)", "3 channels"):
        check_image(torch.rand(2, 5, 8, 8), channels=3)


def test_wrong_image_size():
    with raises_shape("(B, 1, 28, 28)", "28x28", "resize"):
        check_image(torch.rand(2, 1, 8, 8), channels=1, size=(28, 28))


def test_uint8_images_suggest_scaling():
    with raises_shape("float", "torch.uint8", "x.float() / 255"):
        check_image(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), channels=3)


def test_nan_in_images():
    x = torch.rand(2, 1, 4, 4)
    x[0, 0, 1, 1] = float("nan")
    with raises_shape("1 NaN"):
        check_image(x)


def test_valid_image_passes_through():
    x = torch.rand(2, 3, 16, 16)
    assert check_image(x, channels=3, size=(16, 16)) is x
    assert check_image(x) is x


# ---------------------------------------------------------------- video (B, T, C, H, W)


def test_video_without_batch_dimension():
    with raises_shape("(B, T, 3, H, W)", "batch dimension is missing", "x.unsqueeze(0)"):
        check_video(torch.rand(6, 3, 8, 8), channels=3)


def test_channels_last_video():
    with raises_shape("(B, T, 3, H, W)", "x.permute(0, 1, 4, 2, 3)"):
        check_video(torch.rand(2, 6, 8, 8, 3), channels=3)


def test_channels_first_video():
    with raises_shape("(B, C, T, H, W)", "x.transpose(1, 2)"):
        check_video(torch.rand(2, 3, 6, 8, 8), channels=3)


def test_video_lengths_checked_against_frames():
    with raises_shape("<= T=6"):
        check_video(torch.rand(2, 6, 1, 4, 4), torch.tensor([6, 7]))


def test_valid_video_passes_through():
    x = torch.rand(2, 6, 1, 4, 4)
    out, lengths = check_video(x, torch.tensor([6, 2]), channels=1)
    assert out is x and lengths.tolist() == [6, 2]


def test_inf_in_video():
    x = torch.rand(1, 2, 1, 2, 2)
    x[..., 0] = math.inf
    with raises_shape("Inf"):
        check_video(x)
