"""The claims card's verdicts come from the numbers: synthetic numbers in, and each verdict flips when
the numbers do (holds / does not hold / inconclusive when seeds disagree / not measured)."""

import copy

import pytest

from gridseq.compare import claims
from gridseq.compare.claims import FAILS, HOLDS, MIXED, NOT_MEASURED


def model(name, family, registry=None, parameters=10_000, **runs_by_key):
    """A claims-input model; runs_by_key maps a per-run key to one value per seed."""
    seeds = max((len(v) for v in runs_by_key.values()), default=0)
    runs = {s: {k: v[s] for k, v in runs_by_key.items()} for s in range(seeds)}
    return {"name": name, "family": family, "registry": registry or name, "parameters": parameters,
            "thread_scaling": None, "reads_whole_input": None, "receptive_field": None, "runs": runs}


def test_verdict_rules():
    assert claims.verdict([True, True]) == HOLDS
    assert claims.verdict([False, False]) == FAILS
    assert claims.verdict([True, False]) == MIXED
    assert claims.verdict([True, None]) == MIXED
    assert claims.verdict([]) == NOT_MEASURED


@pytest.mark.parametrize("conv_speed,expected", [
    ((2000, 2100, 1900), HOLDS),  # conv 2x faster in every seed
    ((400, 450, 420), FAILS),  # conv 2x slower in every seed
    ((2000, 400, 2000), MIXED),  # seeds disagree
    ((1050, 1000, 1020), MIXED),  # within the 10% tie margin
])
def test_cnn_train_faster_flips_with_the_numbers(conv_speed, expected):
    models = [model("cnn", "convolutional", samples_per_second=list(conv_speed)),
              model("gru", "recurrent", samples_per_second=[1000, 1000, 1000])]
    assert claims.cnn_train_faster(models)["verdict"] == expected


def test_cnn_train_faster_needs_both_families():
    assert claims.cnn_train_faster([model("gru", "recurrent", samples_per_second=[1.0])])["verdict"] == NOT_MEASURED


def test_cnn_fewer_parameters_flips():
    cnn = model("cnn", "convolutional", parameters=5_000, metric=[0.98, 0.98])
    gru = model("gru", "recurrent", parameters=50_000, metric=[0.97, 0.97])
    assert claims.cnn_fewer_parameters([cnn, gru], higher_is_better=True)["verdict"] == HOLDS
    big_cnn = {**cnn, "parameters": 500_000}
    assert claims.cnn_fewer_parameters([big_cnn, gru], higher_is_better=True)["verdict"] == FAILS
    # seed 1: the small cnn falls short of the level and only a big one reaches it -> seeds disagree
    weak = model("cnn", "convolutional", parameters=5_000, metric=[0.98, 0.90])
    strong = model("cnn-big", "convolutional", parameters=500_000, metric=[0.98, 0.98])
    assert claims.cnn_fewer_parameters([weak, strong, gru], higher_is_better=True)["verdict"] == MIXED


def test_cnn_fewer_parameters_for_errors_lower_is_better():
    cnn = model("tcn", "convolutional", parameters=5_000, metric=[0.010, 0.011])
    gru = model("gru", "recurrent", parameters=50_000, metric=[0.010, 0.010])
    assert claims.cnn_fewer_parameters([cnn, gru], higher_is_better=False)["verdict"] == HOLDS
    bad = model("tcn", "convolutional", parameters=5_000, metric=[0.1, 0.1])  # far worse: only via the level
    big = model("fcn", "convolutional", parameters=90_000, metric=[0.01, 0.01])
    assert claims.cnn_fewer_parameters([bad, big, gru], higher_is_better=False)["verdict"] == FAILS


def test_rnn_variable_length_flips():
    good = [model("gru", "recurrent", padding_invariant=[True, True]), model("cnn", "convolutional", padding_invariant=[True, True])]
    good[0]["reads_whole_input"] = True
    good[1]["reads_whole_input"] = False
    result = claims.rnn_variable_length(good)
    assert result["verdict"] == HOLDS
    assert result["evidence"]["fixed_size_models"] == ["cnn"]
    bad = copy.deepcopy(good)
    bad[0]["runs"] = {0: {"padding_invariant": False}, 1: {"padding_invariant": False}}
    assert claims.rnn_variable_length(bad)["verdict"] == FAILS
    mixed = copy.deepcopy(good)
    mixed[0]["runs"][1]["padding_invariant"] = False
    assert claims.rnn_variable_length(mixed)["verdict"] == MIXED
    truncating = copy.deepcopy(good)
    truncating[0]["reads_whole_input"] = False
    assert claims.rnn_variable_length(truncating)["verdict"] == FAILS
    assert claims.rnn_variable_length([good[1]])["verdict"] == NOT_MEASURED


def test_rnn_memory_flips_and_needs_a_sweep():
    lstm = model("lstm", "recurrent", longest_solved=[800, 800])
    tcn = model("tcn", "convolutional", longest_solved=[50, 50])
    assert claims.rnn_memory([lstm, tcn])["verdict"] == HOLDS
    assert claims.rnn_memory([model("lstm", "recurrent", longest_solved=[50, 50]),
                              model("tcn", "convolutional", longest_solved=[800, 800])])["verdict"] == FAILS
    assert claims.rnn_memory([model("lstm", "recurrent", longest_solved=[800, 50]),
                              model("tcn", "convolutional", longest_solved=[200, 200])])["verdict"] == MIXED
    no_sweep = claims.rnn_memory([model("lstm", "recurrent", metric=[0.9]), model("tcn", "convolutional", metric=[0.9])])
    assert no_sweep["verdict"] == NOT_MEASURED and "--lengths" in no_sweep["evidence"]["reason"]


def test_vanishing_gradients_flips():
    rnn = model("rnn", "recurrent", gradient_first_to_last=[1e-6, 1e-7])
    lstm = model("lstm", "recurrent", gradient_first_to_last=[1e-2, 3e-2])
    gru = model("gru", "recurrent", gradient_first_to_last=[0.2, 0.1])
    assert claims.vanishing_gradients([rnn, lstm, gru])["verdict"] == HOLDS
    # the vanilla RNN keeps its gradient (short sequences): does not hold
    healthy = model("rnn", "recurrent", gradient_first_to_last=[0.5, 0.4])
    assert claims.vanishing_gradients([healthy, lstm, gru])["verdict"] == FAILS
    # the gated models vanish even more than the RNN: does not hold
    worse = model("lstm", "recurrent", gradient_first_to_last=[1e-9, 1e-9])
    assert claims.vanishing_gradients([rnn, worse])["verdict"] == FAILS
    # seed 1 disagrees
    split = model("lstm", "recurrent", gradient_first_to_last=[1e-2, 1e-9])
    assert claims.vanishing_gradients([rnn, split])["verdict"] == MIXED
    assert claims.vanishing_gradients([lstm, gru])["verdict"] == NOT_MEASURED


def test_evaluate_claims_returns_every_claim_with_a_known_verdict():
    models = [model("cnn", "convolutional", samples_per_second=[2000.0], metric=[0.98], padding_invariant=[True]),
              model("rnn", "recurrent", samples_per_second=[500.0], metric=[0.9], padding_invariant=[True],
                    gradient_first_to_last=[1e-8])]
    card = claims.evaluate_claims(models, higher_is_better=True)
    assert [c["id"] for c in card] == ["cnn_train_faster", "cnn_fewer_parameters", "rnn_variable_length", "rnn_memory",
                                       "vanishing_gradients", "published_ordering"]
    assert all(c["verdict"] in claims.VERDICTS and c["evidence"] for c in card)


BAI = {"source": "Bai et al. 2018", "metric": "accuracy", "values": {"tcn": 0.990, "gru": 0.962, "lstm": 0.872}}


@pytest.mark.parametrize("scores,expected", [
    ({"tcn": [0.985, 0.984], "gru": [0.95, 0.96], "lstm": [0.90, 0.91]}, HOLDS),  # tcn > gru > lstm in both seeds
    ({"tcn": [0.94, 0.93], "gru": [0.97, 0.97], "lstm": [0.90, 0.91]}, FAILS),  # gru beats tcn in both seeds
    ({"tcn": [0.985, 0.93], "gru": [0.95, 0.97], "lstm": [0.90, 0.91]}, MIXED),  # the seeds disagree
    ({"tcn": [0.962, 0.963], "gru": [0.960, 0.960], "lstm": [0.90, 0.91]}, MIXED),  # tcn and gru inside the tie margin
])
def test_published_ordering_flips_with_the_numbers(scores, expected):
    models = [model(name, "recurrent" if name != "tcn" else "convolutional", metric=v) for name, v in scores.items()]
    card = claims.published_ordering(models, BAI, primary="accuracy", higher_is_better=True)
    assert card["verdict"] == expected
    assert card["evidence"]["published_ranking"] == "tcn > gru > lstm"


def test_published_ordering_judges_only_the_models_present_and_the_pairs_the_paper_separates():
    # lstm not compared: only tcn vs gru is judged; mlp has no published figure and is ignored
    models = [model("tcn", "convolutional", metric=[0.98]), model("gru", "recurrent", metric=[0.96]),
              model("mlp", "dense", metric=[0.99])]
    card = claims.published_ordering(models, BAI, primary="accuracy", higher_is_better=True)
    assert card["verdict"] == HOLDS and list(card["evidence"]["published"]) == ["tcn", "gru"]
    # a published near-tie (0.570 vs 0.567, inside the tolerance) is not judged either way
    shuffled = {"source": "x", "metric": "accuracy", "values": {"mlp": 0.68, "cnn": 0.567, "gru": 0.570}}
    models = [model("cnn", "convolutional", metric=[0.60]), model("gru", "recurrent", metric=[0.50]),
              model("mlp", "dense", metric=[0.70])]
    card = claims.published_ordering(models, shuffled, primary="accuracy", higher_is_better=True)
    assert card["verdict"] == HOLDS and card["evidence"]["per_seed"][0]["swapped"] == []


@pytest.mark.parametrize("references,primary,present,reason", [
    (None, "accuracy", ("tcn", "gru"), "no published figures"),
    (BAI, "accuracy", ("tcn", "mlp"), "needs at least two"),
    (BAI, "macro_f1", ("tcn", "gru"), "the published figures are accuracy"),
])
def test_published_ordering_not_measured(references, primary, present, reason):
    models = [model(n, "convolutional", metric=[0.9]) for n in present]
    card = claims.published_ordering(models, references, primary=primary, higher_is_better=True)
    assert card["verdict"] == NOT_MEASURED and reason in card["evidence"]["reason"]
