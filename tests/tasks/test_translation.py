"""Translation as the field does it: subword vocabularies fitted on train only, sacreBLEU scores of detokenised
output, beam search, the IBM Model 1 baseline, the Kneser-Ney baseline, and `gridseq predict RUN "sentence"`."""

from __future__ import annotations

import json
import random

import pytest
import torch

pytest.importorskip("tokenizers")
pytest.importorskip("sacrebleu")

from gridseq.baselines import IBM1, KneserNey  # noqa: E402
from gridseq.data.contract import Batch  # noqa: E402
from gridseq.data.subword import SubwordVocab  # noqa: E402
from gridseq.data.text_assemble import seq2seq_dataset  # noqa: E402
from gridseq.data.vocab import UNK, Vocab  # noqa: E402
from gridseq.models import registry  # noqa: E402
from gridseq.tasks import for_data  # noqa: E402
from gridseq.tasks.translation import TranslationMetrics, corpus_scores  # noqa: E402

NUMBERS = {"one": "uno", "two": "dos", "three": "tres", "four": "cuatro", "red": "rojo", "green": "verde",
           "cat": "gato", "dog": "perro", "big": "grande", "small": "chico"}


def toy_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    words = list(NUMBERS)
    sources = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 5))) for _ in range(n)]
    return sources, [" ".join(NUMBERS[w] for w in s.split()) for s in sources]


def toy_dataset():
    train, val, test = toy_pairs(200, 0), toy_pairs(20, 1), toy_pairs(20, 2)
    val = (val[0][:-1] + ["one ñandú"], val[1][:-1] + ["uno ñandú"])  # "ñ" and "ú" appear in no training pair
    return seq2seq_dataset("toy", {"train": train, "val": val, "test": test}, source="toy", clean="squeeze",
                           level="subword", target_level="subword", max_size=40)


def test_subword_vocab_is_fitted_on_train_only_and_round_trips_as_data():
    ds = toy_dataset()
    record = ds.info.preprocessing
    assert record["level"] == record["target_level"] == "subword" and record["vocab"]["size"] <= 40
    source = Vocab.from_json(json.loads(json.dumps(record["vocab"])))  # plain JSON, as config.json holds it
    assert isinstance(source, SubwordVocab)
    assert "ñ" not in "".join(source.tokens) and UNK in source.encode("one ñandú")
    assert source.decode(source.encode("two red cats")) == "two red cats"  # detokenising inverts tokenising
    # the stored tokenizer gives the dataset's own ids
    assert ds.train.x[0, : int(ds.train.lengths[0])].tolist() == source.encode(ds.train.texts[0])
    again = SubwordVocab.build(ds.train.texts, vocab_size=40)
    assert again.tokenizer.to_str() == source.tokenizer.to_str()  # a pure function of the training text


def test_translation_metrics_add_up_to_one_sacrebleu_call():
    ds = toy_dataset()
    task = for_data(ds.info)
    assert task.primary == "bleu4"
    vocab = Vocab.from_json(ds.info.preprocessing["target_vocab"])
    metrics = task.metrics()
    assert isinstance(metrics, TranslationMetrics)
    hypotheses = []
    for rows in (torch.arange(0, 10), torch.arange(10, 20)):
        batch = ds.test.batch(rows)
        decoded = batch.y.clone()
        decoded[::3, 0] = 5  # some wrong tokens
        task.decoded = decoded
        metrics.update(torch.zeros(*batch.y.shape, len(vocab)), Batch(batch.x, batch.y, batch.lengths), torch.tensor(1.0))
        hypotheses += [vocab.decode(r) for r in decoded.tolist()]
    got = metrics.compute()
    expected = corpus_scores(hypotheses, list(ds.test.targets))
    assert 0 < got["bleu4"] < 1 and 0 < got["chrf"] < 1
    assert got["bleu4"] == pytest.approx(expected["bleu4"], abs=1e-9) and got["chrf"] == pytest.approx(expected["chrf"], abs=1e-9)


def test_beam_search_finds_at_least_the_greedy_log_probability():
    ds = toy_dataset()
    torch.manual_seed(0)
    model = registry.create_for("seq2seq", ds.info, hidden_size=16, embedding_dim=8, mode="gru", attention="luong").eval()
    x, lengths = ds.test.x[:20], ds.test.lengths[:20]
    with torch.no_grad():
        enc = model.encode(x, lengths)
        memory, mask = enc.memory, enc.mask
        greedy = model.decoder.greedy(enc.state, memory, mask, max_length=12)
        beam = model.decoder.beam_search(enc.state, memory, mask, beam=4, max_length=12)
    assert bool((beam.scores >= greedy.scores - 1e-5).all()) and bool((beam.scores > greedy.scores + 1e-3).any())


def test_ibm1_learns_the_right_word_alignments():
    sources, targets = toy_pairs(300, 0)
    model = IBM1.fit(sources, targets, iterations=10)
    assert {w: model.translate_words([w])[0] for w in NUMBERS} == NUMBERS
    assert model.translate(["Two big dogs ."]) == ["Dos grande dogs."]  # unseen word copied, case and punctuation kept
    one = IBM1.fit(sources, targets, iterations=1)
    assert model.table[("one", "uno")] > one.table[("one", "uno")] + 0.1  # EM sharpens the table iteration by iteration
    assert model.table[("one", "uno")] > 0.9


def test_kneser_ney_probabilities_sum_to_one():
    text = "the cat sat on the mat. the dog sat on the log. " * 3 + "a cat and a dog."
    lm = KneserNey(text, order=5)
    for context in ("", "t", "the ", " the", "zzzz", "dog.", "og s"):
        assert sum(lm.prob(context, c) for c in lm.vocab) == pytest.approx(1.0, abs=1e-9)
    assert lm.prob("the ", "c") > lm.prob("the ", "z")
    assert lm.bits_per_char(text[:60]) < KneserNey(text, order=1).bits_per_char(text[:60])


@pytest.mark.slow
def test_predict_translates_from_the_run_directory_alone(capsys, tmp_path):
    from tests.test_cli import run

    sources, targets = toy_pairs(600, 3)
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in zip(sources, targets)), encoding="utf-8")
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", tsv, "--task", "seq2seq", "--model", "seq2seq", "--data.level=subword",
                         "--data.target_level=subword", "--model.attention=luong", "--model.mode=gru", "--hidden-size", 48,
                         "--epochs", 12, "--lr", 0.01, "--batch-size", 32, "--threads", 1, "--run-dir", run_dir, "--no-progress")
    assert code == 0, err
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["info"]["preprocessing"]["target_vocab"]["tokenizer"]["model"]["type"] == "BPE"  # stored as data
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["bleu4"] > 0.5 and metrics["test"]["chrf"] > 0.7, metrics["test"]
    tsv.unlink()  # predict needs the run directory only
    code, out, err = run(capsys, "predict", run_dir, "two red cat", "one big dog", "--beam", 3, "--json")
    assert code == 0, err
    records = json.loads(out)
    assert [r["output"] for r in records] == ["dos rojo gato", "uno grande perro"], records
