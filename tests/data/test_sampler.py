"""BatchSampler: coverage, determinism, bucketing, sharding; iterate."""

import pytest
import torch

from gridseq.data.contract import Split
from gridseq.data.samplers import BatchSampler, iterate, padded_fraction
from gridseq.errors import ConfigError


def flat(batches):
    return torch.cat(list(batches)).tolist()


@pytest.fixture
def lengths():
    g = torch.Generator().manual_seed(0)
    return torch.randint(5, 201, (1000,), generator=g)


@pytest.mark.parametrize("bucket", [False, True])
def test_every_index_exactly_once_per_epoch(lengths, bucket):
    s = BatchSampler(1000, 32, lengths=lengths, bucket=bucket, seed=3)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s) == 32
        assert sorted(flat(batches)) == list(range(1000))
        assert all(b.dtype == torch.int64 for b in batches)
        assert sum(len(b) < 32 for b in batches) == 1  # 1000 = 31 * 32 + 8


def test_order_is_a_pure_function_of_seed_and_epoch(lengths):
    a = BatchSampler(1000, 32, lengths=lengths, seed=7)
    b = BatchSampler(1000, 32, lengths=lengths, seed=7)
    list(b)  # iterating must not change later epochs
    a.set_epoch(2), b.set_epoch(2)
    assert flat(a) == flat(b) == flat(a.batches(2))
    assert flat(a.batches(1)) != flat(a.batches(2))
    assert flat(a.batches(1)) != flat(BatchSampler(1000, 32, lengths=lengths, seed=8).batches(1))
    # resuming mid-epoch = the same epoch's order with the first k batches skipped
    assert flat(a.batches(2)[5:]) == flat(list(b)[5:])


def test_bucketing_cuts_padding_and_still_reshuffles(lengths):
    random_batches = BatchSampler(1000, 32, lengths=lengths, bucket=False).batches(0)
    sampler = BatchSampler(1000, 32, lengths=lengths)  # bucketing is the default when lengths vary
    assert sampler.bucket
    bucketed = sampler.batches(0)
    assert padded_fraction(lengths, random_batches) > 0.3
    assert padded_fraction(lengths, bucketed) < 0.05
    assert {tuple(sorted(b.tolist())) for b in bucketed} != {tuple(sorted(b.tolist())) for b in sampler.batches(1)}


def test_no_shuffle_is_index_order():
    s = BatchSampler(10, 4, shuffle=False)
    assert [b.tolist() for b in s] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [b.tolist() for b in BatchSampler(10, 4, shuffle=False, drop_last=True)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(BatchSampler(10, 4, drop_last=True)) == 2


@pytest.mark.parametrize("bucket", [False, True])
def test_shards_are_disjoint_and_equal_sized(lengths, bucket):
    shards = [BatchSampler(1000, 32, lengths=lengths, bucket=bucket, seed=1, rank=r, world_size=3) for r in range(3)]
    seen = [flat(s.batches(4)) for s in shards]
    assert [len(x) for x in seen] == [333] * 3
    assert len(set().union(*map(set, seen))) == 999
    assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    # over epochs, the left-over item changes, so nothing is always skipped
    left_out = {(set(range(1000)) - set().union(*(set(flat(s.batches(e))) for s in shards))).pop() for e in range(6)}
    assert len(left_out) > 1


def test_invalid_arguments():
    with pytest.raises(ConfigError, match="batch_size must be a positive int"):
        BatchSampler(10, 0)
    with pytest.raises(ConfigError, match=r"rank must be in \[0, world_size=2\)"):
        BatchSampler(10, 2, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="bucket=True needs lengths"):
        BatchSampler(10, 2, bucket=True)
    with pytest.raises(ConfigError, match=r"lengths must have shape \(n,\) = \(10,\)"):
        BatchSampler(10, 2, lengths=torch.ones(9))


def test_iterate_gathers_and_trims_batches():
    lengths = torch.tensor([2, 5, 3, 1])
    x = torch.zeros(4, 5, 1)
    split = Split(x, torch.arange(4), lengths)
    batches = list(iterate(split, BatchSampler(4, 2, lengths=lengths, shuffle=False, bucket=True)))
    assert [b.lengths.tolist() for b in batches] == [[1, 2], [3, 5]]
    assert [b.x.shape[1] for b in batches] == [2, 5]
    assert [b.y.tolist() for b in batches] == [[3, 0], [2, 1]]
