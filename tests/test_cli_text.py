"""The text commands end to end on user files: train a language model on a .txt file and `generate`
from it, train on a text+label CSV and a source/target TSV and `predict` text, `--beam` and the
errors of asking the wrong kind of run."""

import json
import random

import pytest

from tests.test_cli import assert_one_line_error, run


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    rng = random.Random(0)
    (root / "story.txt").write_text("".join(rng.choice(["the cat sat. ", "a dog ran. ", "hello world. "]) for _ in range(300)),
                                    encoding="utf-8")
    with open(root / "reverse.tsv", "w", encoding="utf-8") as f:
        for _ in range(200):
            word = "".join(rng.choice("abcde") for _ in range(rng.randint(2, 5)))
            f.write(f"{word}\t{word[::-1]}\n")
    with open(root / "reviews.csv", "w", encoding="utf-8") as f:
        f.write("text,label\n")
        for _ in range(200):
            good = rng.random() < 0.5
            f.write(f"{'good great' if good else 'bad awful'} {rng.choice(['movie', 'film'])},{'pos' if good else 'neg'}\n")
    return root


def _train(capsys, tmp_path, source, *flags):
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", source, *flags, "--epochs", 2, "--run-dir", run_dir, "--no-progress")
    assert code == 0, err
    return run_dir


def test_generate_streams_seeded_text_from_a_language_model_run(capsys, tmp_path, text_files):
    run_dir = _train(capsys, tmp_path, text_files / "story.txt", "--task", "lm", "--model", "gru", "--hidden-size", 32)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"]["name"] == "lm" and config["data"]["info"]["preprocessing"]["vocab"]["level"] == "char"
    code, first, _ = run(capsys, "generate", run_dir, "--prompt", "the ", "--length", 40, "--seed", 3)
    assert code == 0 and first.startswith("the ") and len(first.rstrip("\n")) == 44
    assert run(capsys, "generate", run_dir, "--prompt", "the ", "--length", 40, "--seed", 3)[1] == first
    code, greedy, _ = run(capsys, "generate", run_dir, "--prompt", "a ", "--length", 10, "--temperature", 0)
    assert code == 0 and greedy == run(capsys, "generate", run_dir, "--prompt", "a ", "--length", 10, "--top-k", 1)[1]
    code, out, err = run(capsys, "predict", run_dir, "some text")
    assert_one_line_error(code, err, "language model", "gridseq generate")
    code, out, err = run(capsys, "generate", run_dir, "--prompt", "\u00e9\u00e9")
    assert_one_line_error(code, err, "no token")
    assert out == ""  # nothing half-printed before the error


def test_text_classification_run_predicts_raw_strings(capsys, tmp_path, text_files):
    run_dir = _train(capsys, tmp_path, text_files / "reviews.csv", "--model", "gru", "--hidden-size", 16)
    code, out, err = run(capsys, "predict", run_dir, "good great film", "bad awful movie", "--json")
    assert code == 0, err
    records = json.loads(out)
    assert [r["input"] for r in records] == ["good great film", "bad awful movie"]
    assert all(set(r["probabilities"]) <= {"pos", "neg"} and r["label"] in ("pos", "neg") for r in records)
    code, out, _ = run(capsys, "predict", run_dir, "--split", "test", "--json")
    assert code == 0 and all("target" in r for r in json.loads(out))
    assert_one_line_error(*run(capsys, "generate", run_dir)[::2], "classify run")
    assert_one_line_error(*run(capsys, "evaluate", run_dir, "--beam", 2)[::2], "seq2seq")


def test_seq2seq_run_decodes_with_beam_search(capsys, tmp_path, text_files):
    run_dir = _train(capsys, tmp_path, text_files / "reverse.tsv", "--task", "seq2seq", "--model", "seq2seq",
                     "--hidden-size", 16)
    code, out, err = run(capsys, "predict", run_dir, "abc", "--beam", 3, "--json")
    assert code == 0, err
    (record,) = json.loads(out)
    assert record["input"] == "abc" and isinstance(record["output"], str)
    code, out, err = run(capsys, "evaluate", run_dir, "--beam", 2, "--json")
    assert code == 0, err
    assert {"exact_match", "token_accuracy", "cer", "loss"} <= set(json.loads(out))
