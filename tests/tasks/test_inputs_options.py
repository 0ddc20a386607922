"""Task options against a server's limits (gridseq.tasks.inputs.check_options)."""

import pytest

from gridseq.errors import ConfigError
from gridseq.tasks.inputs import InputLimits, check_options


def test_a_default_length_over_the_limit_is_capped_an_asked_one_refused():
    limits = InputLimits(max_generate=20)
    assert check_options("lm", {"length": 100, "seed": None}, {}, limits)["length"] == 20
    assert check_options("lm", {"length": 100, "seed": None}, {"length": 15}, limits)["length"] == 15
    with pytest.raises(ConfigError, match="length=50 is over this server's limit of 20"):
        check_options("lm", {"length": 100, "seed": None}, {"length": 50}, limits)
