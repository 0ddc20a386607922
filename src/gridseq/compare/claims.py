"""The claims card: the textbook CNN-vs-RNN claims, each with a verdict computed from this run's numbers.

Nothing here is written in advance. Each claim turns the measurements of every seed into one outcome
per seed — the claim held, failed, or the numbers sit inside a tie margin — and the verdict is:

- "holds" when every seed says it held,
- "does not hold" when every seed says it failed,
- "inconclusive" when seeds disagree or land in the tie margin,
- "not measured" when the comparison has no models (or no probe) to test the claim with.

Input: one dict per model, as `report.claim_inputs` builds them (and the unit tests write by hand):

    {"name": "gru", "family": "recurrent", "registry": "gru", "parameters": 40_000,
     "thread_scaling": 1.3, "reads_whole_input": True, "receptive_field": None,
     "runs": {0: {"metric": 0.97, "samples_per_second": 900.0, "padding_invariant": True,
                  "gradient_first_to_last": 0.2, "longest_solved": 200}, 1: {...}}}
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

HOLDS, FAILS, MIXED, NOT_MEASURED = "holds", "does not hold", "inconclusive", "not measured"
VERDICTS = (HOLDS, FAILS, MIXED, NOT_MEASURED)

SPEED_MARGIN = 1.1  # "faster" needs a samples/s ratio above 1.1 (below 1/1.1: slower); between: a tie
ACCURACY_TOLERANCE = 0.005  # "the same accuracy": within half a point (higher-is-better metrics)
ERROR_TOLERANCE = 0.10  # ... or within 10% (lower-is-better metrics such as mse)
VANISHING = 1e-2  # a gradient at step 1 below 1% of the last step's counts as vanished
MITIGATION = 2.0  # gated models must keep at least 2x more of the gradient than the vanilla RNN
CONV = ("convolutional",)
RECURRENT = ("recurrent",)


def verdict(outcomes: list[bool | None]) -> str:
    """One verdict from per-seed outcomes: True held, False failed, None a tie or no decision."""
    if not outcomes:
        return NOT_MEASURED
    if all(o is True for o in outcomes):
        return HOLDS
    if all(o is False for o in outcomes):
        return FAILS
    return MIXED


def _seeds(models: list[dict]) -> list:
    seeds = sorted({s for m in models for s in m.get("runs", {})}, key=str)
    return seeds


def _value(model: dict, seed, key: str):
    v = model.get("runs", {}).get(seed, {}).get(key)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _of(models: list[dict], families: tuple[str, ...]) -> list[dict]:
    return [m for m in models if m.get("family") in families]


def _ratio_outcome(ratio: float | None, margin: float) -> bool | None:
    if ratio is None or not math.isfinite(ratio):
        return None
    return True if ratio > margin else False if ratio < 1 / margin else None


def cnn_train_faster(models: list[dict]) -> dict[str, Any]:
    """"CNNs train faster": median training samples/s of the convolutional models over that of the
    recurrent models, per seed; the thread-scaling ratio (1 → all threads) is reported beside it."""
    conv, rec = _of(models, CONV), _of(models, RECURRENT)
    claim = {"id": "cnn_train_faster", "claim": "CNNs train faster than RNNs"}
    if not conv or not rec:
        return {**claim, "verdict": NOT_MEASURED, "evidence": {"reason": "needs convolutional and recurrent models"}}
    ratios, outcomes = {}, []
    for seed in _seeds(models):
        c = [v for m in conv if (v := _value(m, seed, "samples_per_second")) is not None]
        r = [v for m in rec if (v := _value(m, seed, "samples_per_second")) is not None]
        if not c or not r:
            continue
        ratio = statistics.median(c) / statistics.median(r)
        ratios[seed] = ratio
        outcomes.append(_ratio_outcome(ratio, SPEED_MARGIN))
    scaling_c = [m["thread_scaling"] for m in conv if m.get("thread_scaling")]
    scaling_r = [m["thread_scaling"] for m in rec if m.get("thread_scaling")]
    evidence = {
        "samples_per_second_ratio": ratios,
        "rule": f"median conv training samples/s / median recurrent > {SPEED_MARGIN} in every seed",
        "conv_samples_per_second": {m["name"]: _mean(m, "samples_per_second") for m in conv},
        "recurrent_samples_per_second": {m["name"]: _mean(m, "samples_per_second") for m in rec},
        "thread_scaling": {m["name"]: m.get("thread_scaling") for m in conv + rec},
        "thread_scaling_ratio": (statistics.median(scaling_c) / statistics.median(scaling_r)) if scaling_c and scaling_r else None,
    }
    return {**claim, "verdict": verdict(outcomes), "evidence": evidence}


def cnn_fewer_parameters(models: list[dict], *, higher_is_better: bool) -> dict[str, Any]:
    """"CNNs need fewer parameters for the same accuracy": per seed, the level both families reach
    (the worse of the two families' best scores); the smallest conv and the smallest recurrent
    model reaching it (within a tolerance) are compared by parameter count."""
    conv, rec = _of(models, CONV), _of(models, RECURRENT)
    claim = {"id": "cnn_fewer_parameters", "claim": "CNNs need fewer parameters than RNNs for the same accuracy"}
    if not conv or not rec:
        return {**claim, "verdict": NOT_MEASURED, "evidence": {"reason": "needs convolutional and recurrent models"}}
    best: Callable = max if higher_is_better else min
    per_seed, outcomes = {}, []
    for seed in _seeds(models):
        scores = {m["name"]: _value(m, seed, "metric") for m in conv + rec}
        c = [scores[m["name"]] for m in conv if scores[m["name"]] is not None]
        r = [scores[m["name"]] for m in rec if scores[m["name"]] is not None]
        if not c or not r:
            continue
        level = min(best(c), best(r)) if higher_is_better else max(best(c), best(r))

        def reaches(v, level=level):
            if v is None:
                return False
            return v >= level - ACCURACY_TOLERANCE if higher_is_better else v <= level * (1 + ERROR_TOLERANCE)

        small_c = min((m for m in conv if reaches(scores[m["name"]])), key=lambda m: m["parameters"])
        small_r = min((m for m in rec if reaches(scores[m["name"]])), key=lambda m: m["parameters"])
        per_seed[seed] = {"level": level, "conv": small_c["name"], "conv_parameters": small_c["parameters"],
                          "recurrent": small_r["name"], "recurrent_parameters": small_r["parameters"]}
        pc, pr = small_c["parameters"], small_r["parameters"]
        outcomes.append(True if pc < pr else False if pc > pr else None)
    tolerance = f"{ACCURACY_TOLERANCE}" if higher_is_better else f"{ERROR_TOLERANCE:.0%}"
    evidence = {"per_seed": per_seed, "parameters": {m["name"]: m["parameters"] for m in conv + rec},
                "rule": f"smallest conv model within {tolerance} of the level both families reach has fewer "
                        f"parameters than the smallest recurrent one, in every seed"}
    return {**claim, "verdict": verdict(outcomes), "evidence": evidence}


def rnn_variable_length(models: list[dict]) -> dict[str, Any]:
    """"RNNs handle variable-length input": every recurrent model gives the same output for an item
    alone and padded in a batch, and reads inputs longer than the training length; conv models'
    answers (FCN's masked pooling, TCN's causality) are listed beside them."""
    rec = _of(models, RECURRENT)
    claim = {"id": "rnn_variable_length", "claim": "RNNs handle variable-length input (CNNs need a fixed size)"}
    measured = [m for m in rec if any(_value(m, s, "padding_invariant") is not None for s in _seeds([m]))]
    if not measured:
        return {**claim, "verdict": NOT_MEASURED, "evidence": {"reason": "needs recurrent models on sequence data"}}
    outcomes = []
    for seed in _seeds(measured):
        flags = [_value(m, seed, "padding_invariant") for m in measured]
        whole = [m.get("reads_whole_input") for m in measured]
        if any(f is False for f in flags) or any(w is False for w in whole):
            outcomes.append(False)
        elif all(f is True for f in flags):
            outcomes.append(True)
        else:
            outcomes.append(None)
    others = [m for m in models if m.get("family") not in RECURRENT]
    evidence = {
        "padding_invariant": {m["name"]: _all_true(m, "padding_invariant") for m in models},
        "reads_whole_input": {m["name"]: m.get("reads_whole_input") for m in models},
        "fixed_size_models": [m["name"] for m in others if m.get("reads_whole_input") is False],
        "rule": "every recurrent model padding-invariant in every seed and reading inputs longer than T",
    }
    return {**claim, "verdict": verdict(outcomes), "evidence": evidence}


def rnn_memory(models: list[dict]) -> dict[str, Any]:
    """"RNNs carry memory, CNNs see only their receptive field": from a length sweep, the longest
    length a recurrent model solved against the longest a conv model solved, per seed."""
    conv, rec = _of(models, CONV), _of(models, RECURRENT)
    claim = {"id": "rnn_memory", "claim": "RNNs carry memory; CNNs see only their receptive field"}
    swept = any(_value(m, s, "longest_solved") is not None for m in models for s in _seeds([m]))
    structure = {m["name"]: {"receptive_field": m.get("receptive_field"), "input_steps_seen": m.get("input_steps_seen")}
                 for m in conv + rec}
    if not swept or not conv or not rec:
        reason = ("needs a length sweep on a memory probe: gridseq compare adding --lengths 50,200,800"
                  if not swept else "needs convolutional and recurrent models")
        return {**claim, "verdict": NOT_MEASURED, "evidence": {"reason": reason, "structure": structure}}
    per_seed, outcomes = {}, []
    for seed in _seeds(models):
        lr = max((_value(m, seed, "longest_solved") or 0 for m in rec), default=0)
        lc = max((_value(m, seed, "longest_solved") or 0 for m in conv), default=0)
        per_seed[seed] = {"recurrent": lr, "convolutional": lc}
        outcomes.append(None if lr == lc == 0 else lr > lc)
    evidence = {"longest_solved": {m["name"]: {s: _value(m, s, "longest_solved") for s in _seeds([m])} for m in models},
                "per_seed": per_seed, "structure": structure,
                "rule": "the longest length a recurrent model solves exceeds the longest a conv model solves, in every seed"}
    return {**claim, "verdict": verdict(outcomes), "evidence": evidence}


def vanishing_gradients(models: list[dict]) -> dict[str, Any]:
    """"Vanilla RNNs suffer vanishing gradients; LSTM/GRU mitigate them": after training, the vanilla
    RNN's ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ is below 1% and every gated model keeps at least twice as much."""
    rnn = [m for m in models if m.get("registry") == "rnn"]
    gated = [m for m in models if m.get("registry") in ("lstm", "gru")]
    claim = {"id": "vanishing_gradients", "claim": "Vanilla RNNs suffer vanishing gradients; LSTM/GRU mitigate them"}
    if not rnn or not gated:
        return {**claim, "verdict": NOT_MEASURED, "evidence": {"reason": "needs rnn and lstm or gru"}}
    per_seed, outcomes = {}, []
    for seed in _seeds(models):
        r = [v for m in rnn if (v := _value(m, seed, "gradient_first_to_last")) is not None]
        g = [v for m in gated if (v := _value(m, seed, "gradient_first_to_last")) is not None]
        if not r or not g:
            continue
        r_max, g_min = max(r), min(g)
        per_seed[seed] = {"rnn": r_max, "gated_min": g_min}
        if r_max >= VANISHING or g_min < r_max:
            outcomes.append(False)
        elif g_min >= MITIGATION * r_max:
            outcomes.append(True)
        else:
            outcomes.append(None)
    evidence = {
        "first_to_last_trained": {m["name"]: {s: _value(m, s, "gradient_first_to_last") for s in _seeds([m])} for m in rnn + gated},
        "first_to_last_init": {m["name"]: {s: _value(m, s, "gradient_init_first_to_last") for s in _seeds([m])} for m in rnn + gated},
        "per_seed": per_seed,
        "rule": f"after training, rnn's ‖∂L/∂h_1‖/‖∂L/∂h_T‖ < {VANISHING:g} and every gated model's is ≥ {MITIGATION:g}× the rnn's, in every seed",
    }
    return {**claim, "verdict": verdict(outcomes), "evidence": evidence}


def published_ordering(models: list[dict], references: dict[str, Any] | None, *, primary: str | None,
                       higher_is_better: bool) -> dict[str, Any]:
    """"The published ranking holds here": for every pair of compared models whose published scores
    (`references`, e.g. Bai et al. 2018 on seq-MNIST: TCN 0.990 > GRU 0.962 > LSTM 0.872) differ by more
    than the tie tolerance, this seed's scores rank them the same way. A pair that swaps fails the seed,
    a pair inside the tolerance is a tie; pairs the paper itself ties are not judged."""
    claim = {"id": "published_ordering", "claim": "The published ranking of these models holds on this data"}
    values = (references or {}).get("values") or {}
    present = [m for m in models if m["name"] in values]
    if len(present) < 2 or (primary is not None and references.get("metric") != primary):
        reason = ("no published figures for this dataset" if not values else
                  f"the published figures are {references.get('metric')}, this comparison's metric is {primary}"
                  if len(present) >= 2 else "needs at least two of the models with published figures: " + ", ".join(values))
        return {**claim, "verdict": NOT_MEASURED, "evidence": {"reason": reason}}
    sign = 1 if higher_is_better else -1

    def gap(a: float, b: float) -> float:  # > 0 when a is better than b
        return sign * (a - b)

    def tolerance(a: float, b: float) -> float:
        return ACCURACY_TOLERANCE if higher_is_better else ERROR_TOLERANCE * max(abs(a), abs(b))

    names = sorted((m["name"] for m in present), key=lambda n: -sign * values[n])
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
             if gap(values[a], values[b]) > tolerance(values[a], values[b])]
    by_name = {m["name"]: m for m in present}
    per_seed, outcomes = {}, []
    for seed in _seeds(present):
        scores = {n: _value(by_name[n], seed, "metric") for n in names}
        if not pairs or any(scores[n] is None for p in pairs for n in p):
            continue
        swapped = [f"{a} < {b}" for a, b in pairs if gap(scores[a], scores[b]) < -tolerance(scores[a], scores[b])]
        tied = [f"{a} ≈ {b}" for a, b in pairs if abs(gap(scores[a], scores[b])) <= tolerance(scores[a], scores[b])]
        per_seed[seed] = {"scores": scores, "swapped": swapped, "tied": tied}
        outcomes.append(False if swapped else None if tied else True)
    ranking = " > ".join(names)
    evidence = {"published": {n: values[n] for n in names}, "published_ranking": ranking, "source": references.get("source"),
                "per_seed": per_seed,
                "rule": f"every pair the paper separates by more than the tie tolerance ({ranking}) is ranked the same "
                        "way by this run's scores, in every seed"}
    return {**claim, "verdict": verdict(outcomes), "evidence": evidence}


def _mean(model: dict, key: str) -> float | None:
    values = [v for s in model.get("runs", {}) if (v := _value(model, s, key)) is not None]
    return statistics.mean(values) if values else None


def _all_true(model: dict, key: str) -> bool | None:
    values = [_value(model, s, key) for s in model.get("runs", {})]
    values = [v for v in values if v is not None]
    return all(values) if values else None


def evaluate_claims(models: list[dict], *, higher_is_better: bool, references: dict[str, Any] | None = None,
                    primary: str | None = None) -> list[dict[str, Any]]:
    """Every claim of the card, in order, each {"id", "claim", "verdict", "evidence"}. `references` are the
    dataset's published figures ({"source", "metric", "values": {label: score}}), `primary` the metric the
    models' "metric" holds."""
    return [
        cnn_train_faster(models),
        cnn_fewer_parameters(models, higher_is_better=higher_is_better),
        rnn_variable_length(models),
        rnn_memory(models),
        vanishing_gradients(models),
        published_ordering(models, references, primary=primary, higher_is_better=higher_is_better),
    ]
