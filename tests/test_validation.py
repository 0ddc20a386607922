"""Scalar argument checks shared by every config (gridseq._validation): cleaned values back, ConfigError
messages that name the argument, the expectation and what came."""

import numpy as np
import pytest

from gridseq._validation import check_choice, check_int_tuple, check_positive_int, check_probability, did_you_mean
from gridseq.errors import ConfigError


@pytest.mark.parametrize("bad", [0, -1, 2.0, "3", True, None])
def test_positive_int_rejects(bad):
    with pytest.raises(ConfigError, match=rf"hidden_size must be a positive int, got {bad!r}\."):
        check_positive_int(bad, "hidden_size")


def test_positive_int_minimum_and_value():
    assert check_positive_int(0, "hidden", minimum=0) == 0
    with pytest.raises(ConfigError, match="hidden must be an int >= 0, got -1"):
        check_positive_int(-1, "hidden", minimum=0)


def test_numpy_int_gets_a_conversion_hint():
    with pytest.raises(ConfigError, match=r"num_classes must be a positive int, got np.int64\(10\) \(int64\); convert it with int\(\)"):
        check_positive_int(np.int64(10), "num_classes")


@pytest.mark.parametrize("bad", [1, 1.0, -0.1, float("nan"), "0.5", True])
def test_probability_rejects(bad):
    with pytest.raises(ConfigError, match=r"dropout must be a number in \[0, 1\)"):
        check_probability(bad, "dropout")


def test_probability_returns_float():
    out = check_probability(0, "dropout")
    assert out == 0.0 and type(out) is float
    assert type(check_probability(np.float64(0.5), "dropout")) is float


def test_choice_names_choices_and_suggests():
    assert check_choice("gru", "mode", ("rnn", "lstm", "gru")) == "gru"
    with pytest.raises(ConfigError, match=r"mode must be one of 'rnn', 'lstm', 'gru', got 'lstn'\. Did you mean 'lstm'\?"):
        check_choice("lstn", "mode", ("rnn", "lstm", "gru"))


def test_int_tuple_cleans_lists_and_single_ints():
    assert check_int_tuple([3, 4], "channels") == (3, 4)
    assert check_int_tuple(5, "channels") == (5,)
    assert check_int_tuple((1, 8, 8), "input_shape", length=3) == (1, 8, 8)


@pytest.mark.parametrize(
    ("bad", "message"),
    [("34", "a sequence of ints"), ([3, 0], r"channels\[1\] must be a positive int, got 0"),
     ([3, True], r"channels\[1\]"), ([1, 8], "must have 3 entries, got 2")],
)
def test_int_tuple_rejects(bad, message):
    with pytest.raises(ConfigError, match=message):
        check_int_tuple(bad, "channels", length=3 if message.startswith("must have") else None)


def test_did_you_mean():
    assert did_you_mean("hiden_size", ["hidden_size", "num_layers"]) == " Did you mean 'hidden_size'?"
    assert did_you_mean("xyz", ["hidden_size"]) == ""
