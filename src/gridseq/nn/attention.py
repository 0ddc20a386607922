"""Attention for encoder-decoders: a query (the decoder's state) reads a weighted average of a memory.

    score(q, m_s)   one number per memory position s
    weights         softmax over the valid positions (padded positions get exactly zero weight)
    context         Σ_s weights_s · m_s

Three score functions:

    "bahdanau"  additive (Bahdanau et al. 2015):  v · tanh(W_q q + W_m m_s + b)
    "luong"     general (Luong et al. 2015):      q · (W_m m_s)
    "dot"       dot product (Luong et al. 2015):  q · m_s            (needs query size = memory size)

The memory-side part of every score — `W_m m_s` — does not depend on the query, so `prepare(memory,
mask)` computes it once per sequence and each decoding step only projects its query.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from gridseq._validation import check_choice, check_positive_int
from gridseq.errors import ConfigError, ShapeError
from gridseq.shapes import check_finite

KINDS = ("bahdanau", "luong", "dot")


class AttentionMemory(NamedTuple):
    """A memory ready to be attended: made once per sequence by `Attention.prepare`.

    Attributes:
        values: (B, S, Hm) what the context averages (e.g. encoder outputs).
        keys: (B, S, A) the memory-side projection the scores use (A = attention size; Hq for
            "luong"; the values themselves for "dot").
        mask: (B, S) bool, True at valid positions, or None (every position valid).
    """

    values: Tensor
    keys: Tensor
    mask: Tensor | None

    def select(self, index: Tensor) -> AttentionMemory:
        """The memory of batch rows `index` (B',) — e.g. each row repeated once per beam."""
        mask = None if self.mask is None else self.mask.index_select(0, index)
        return AttentionMemory(self.values.index_select(0, index), self.keys.index_select(0, index), mask)


class Attention(nn.Module):
    """Bahdanau (additive), Luong (general) or dot-product attention over a padded memory.

    Args:
        query_size: Hq, size of a query (the decoder's hidden state).
        memory_size: Hm, size of a memory position (e.g. D*H of a bidirectional encoder).
        kind: "bahdanau", "luong" or "dot" (see the module docstring). Default: "bahdanau".
        attention_size: A, the width of the additive score's hidden layer ("bahdanau" only).
            Default: query_size.

    Shape:
        - query: (B, Hq), or (B, U, Hq) for U queries at once.
        - memory: (B, S, Hm) float.  - mask: (B, S) bool, True at valid positions, optional.
        - Output: context (B, Hm) and weights (B, S); with U queries (B, U, Hm) and (B, U, S).
          Weights sum to 1 over S and are exactly zero where the mask is False.

    Example:
        >>> attn = Attention(query_size=16, memory_size=32, kind="bahdanau")
        >>> memory, mask = torch.randn(4, 7, 32), torch.arange(7) < torch.tensor([[7], [5], [2], [1]])
        >>> context, weights = attn(torch.randn(4, 16), memory, mask)
        >>> context.shape, weights.shape, bool(weights[2, 2:].eq(0).all())
        (torch.Size([4, 32]), torch.Size([4, 7]), True)
    """

    def __init__(self, query_size: int, memory_size: int, kind: str = "bahdanau", attention_size: int | None = None) -> None:
        super().__init__()
        self.query_size = check_positive_int(query_size, "query_size")
        self.memory_size = check_positive_int(memory_size, "memory_size")
        self.kind = check_choice(kind, "kind", KINDS)
        if attention_size is not None and kind != "bahdanau":
            raise ConfigError(f"attention_size sets the hidden layer of the additive score, so it needs kind='bahdanau', got kind={kind!r}.")
        self.attention_size = check_positive_int(attention_size or query_size, "attention_size")
        if kind == "dot" and query_size != memory_size:
            raise ConfigError(
                f"kind='dot' scores q · m, so query_size must equal memory_size, got {query_size} and {memory_size}; "
                f"use kind='luong' (q · W m), which learns the map between the two."
            )
        if kind == "bahdanau":
            self.query_proj = nn.Linear(query_size, self.attention_size, bias=False)
            self.memory_proj = nn.Linear(memory_size, self.attention_size)  # its bias is the score's b
            self.score = nn.Linear(self.attention_size, 1, bias=False)  # v
        elif kind == "luong":
            self.memory_proj = nn.Linear(memory_size, query_size, bias=False)  # W m, so the score is q · (W m)

    def prepare(self, memory: Tensor, mask: Tensor | None = None) -> AttentionMemory:
        """Check `memory` (B, S, Hm) and `mask` (B, S) and project the memory once for every query.

        Raises:
            ShapeError: memory is not (B, S, memory_size) float, the mask is not (B, S) bool, or a row of
                the mask has no valid position (its weights would be undefined).
        """
        if not isinstance(memory, Tensor) or memory.dim() != 3 or not memory.is_floating_point():
            got = f"{memory.dim()}D {tuple(memory.shape)} {memory.dtype}" if isinstance(memory, Tensor) else type(memory).__name__
            raise ShapeError(f"expected memory of shape (B, S, Hm) = (B, S, {self.memory_size}) as floats, got {got}.")
        if memory.shape[-1] != self.memory_size:
            raise ShapeError(
                f"expected memory of shape (B, S, {self.memory_size}) with Hm={self.memory_size} (memory_size), got "
                f"{tuple(memory.shape)}; the attention was built for a different memory size."
            )
        check_finite(memory, "memory")
        if mask is not None:
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != tuple(memory.shape[:2]):
                got = f"{tuple(mask.shape)} {mask.dtype}" if isinstance(mask, Tensor) else type(mask).__name__
                raise ShapeError(
                    f"expected mask of shape (B, S) = {tuple(memory.shape[:2])} as bool (True at valid positions), got {got}; "
                    f"build it from lengths with gridseq.nn.length_mask(lengths, S)."
                )
            if memory.shape[0] and not bool(mask.any(dim=1).all()):
                raise ShapeError("every row of mask needs at least one True (valid) position; a sequence of length 0 has nothing to attend to.")
            mask = mask.to(memory.device)
        if self.kind == "bahdanau":
            keys = self.memory_proj(memory)  # (B, S, A)
        elif self.kind == "luong":
            keys = self.memory_proj(memory)  # (B, S, Hq)
        else:
            keys = memory  # (B, S, Hq = Hm)
        return AttentionMemory(memory, keys, mask)

    def attend(self, query: Tensor, memory: AttentionMemory) -> tuple[Tensor, Tensor]:
        """Context and weights for `query` (B, Hq) or (B, U, Hq) over a prepared memory.

        The cheap per-step half of `forward`: only the query is projected.
        """
        single = query.dim() == 2
        if query.dim() not in (2, 3) or query.shape[-1] != self.query_size or query.shape[0] != memory.values.shape[0]:
            raise ShapeError(
                f"expected query of shape (B, Hq) or (B, U, Hq) with B={memory.values.shape[0]} (the memory's batch) and "
                f"Hq={self.query_size} (query_size), got {tuple(query.shape)}."
            )
        q = query.unsqueeze(1) if single else query  # (B, U, Hq)
        if self.kind == "bahdanau":
            # (B, U, 1, A) + (B, 1, S, A) -> (B, U, S, A) -> (B, U, S)
            hidden = torch.tanh(self.query_proj(q).unsqueeze(2) + memory.keys.unsqueeze(1))
            scores = self.score(hidden).squeeze(-1)
        else:
            scores = torch.bmm(q, memory.keys.transpose(1, 2))  # (B, U, S)
        if memory.mask is not None:
            # exp(-inf) is exactly 0: padded positions get zero weight, whatever their content
            scores = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, U, S)
        context = torch.bmm(weights, memory.values)  # (B, U, Hm)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights

    def forward(self, query: Tensor, memory: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """`attend(query, prepare(memory, mask))`: context (B, Hm) and weights (B, S)."""
        return self.attend(query, self.prepare(memory, mask))

    def extra_repr(self) -> str:
        s = f"{self.query_size}, {self.memory_size}, kind={self.kind!r}"
        if self.kind == "bahdanau" and self.attention_size != self.query_size:
            s += f", attention_size={self.attention_size}"
        return s
