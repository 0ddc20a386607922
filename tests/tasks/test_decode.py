"""Task.decode: model output on a batch -> JSON-able records, for the tasks with one model call per batch."""

import pytest
import torch

from gridseq import tasks
from gridseq.data.contract import Batch, DatasetInfo
from gridseq.data.vocab import Vocab
from gridseq.errors import ConfigError


def info(task, k=3, **kw):
    return DatasetInfo(name="d", kind="sequence", input_shape=(4, 2), num_classes=k, class_names=tuple("abc"[:k]), task=task, **kw)


def test_classify_decodes_class_names_and_top_k_probabilities():
    task = tasks.get("classify", info("classify"))
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    out = task.decode(logits, Batch(torch.zeros(2, 4, 2)), {"top_k": 2})
    assert out["predictions"] == ["b", "a"]
    assert [list(p) for p in out["probabilities"]] == [["b", "c"], ["a", "b"]]  # most likely first
    probs = torch.softmax(logits, 1)
    assert out["probabilities"][0]["b"] == pytest.approx(float(probs[0, 1]), abs=1e-6)
    assert len(task.decode(logits, Batch(torch.zeros(2, 4, 2)), {"top_k": None})["probabilities"][0]) == 3


def test_tag_decodes_each_valid_step_only():
    task = tasks.get("tag", info("tag"))
    logits = torch.zeros(2, 4, 3)
    logits[:, :, 2] = 1.0  # every step: "c"
    out = task.decode(logits, Batch(torch.zeros(2, 4, 2), None, torch.tensor([4, 2])), {"top_k": 1})
    assert out["predictions"] == [["c"] * 4, ["c"] * 2]
    assert [len(p) for p in out["probabilities"]] == [4, 2] and list(out["probabilities"][1][0]) == ["c"]


def test_regress_decodes_one_value_per_target():
    task = tasks.get("regress", info("regress", k=2))
    out = task.decode(torch.tensor([[1.5, -2.0]]), Batch(torch.zeros(1, 4, 2)), {})
    assert out == {"predictions": [{"a": 1.5, "b": -2.0}]}


def test_seq2seq_decodes_generated_ids_with_the_target_vocabulary():
    vocab = Vocab.build(["ab", "ba"], level="char")
    record = {"vocab": vocab.to_json(), "target_vocab": vocab.to_json()}
    task = tasks.get("seq2seq", DatasetInfo("d", "tokens", (5,), len(vocab.tokens), tuple(vocab.tokens), task="seq2seq",
                                            vocab_size=len(vocab.tokens), preprocessing=record))
    ids = torch.tensor([vocab.encode("ab") + [vocab.tokens.index("<eos>")]])
    assert task.decode(ids, Batch(torch.zeros(1, 5, dtype=torch.int64)), {}) == {"predictions": ["ab"]}


@pytest.mark.parametrize("name", ["lm", "segment"])
def test_tasks_without_per_batch_decoding_say_so(name):
    with pytest.raises(ConfigError, match=f"decode does not apply to '{name}' models; call predict"):
        tasks.get(name).decode(torch.zeros(1, 3), Batch(torch.zeros(1, 3)), {})
