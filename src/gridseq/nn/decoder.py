"""A conditional RNN decoder: token embedding → `Recurrent` (+ attention over a memory) → vocabulary logits,
with teacher-forced training, scheduled sampling, greedy decoding and beam search.

The decoder knows nothing about where its condition comes from. Its initial state and its memory are
passed in: a text encoder's final state and outputs (seq2seq), or an image vector and a CNN feature
map flattened to (B, H·W, C) (captioning). `StateBridge` maps any condition vector to an initial state.

Two attention styles, set by the score function:

    "bahdanau"       attend with the previous state, feed the context into the RNN:
                         c_t = attn(h_{t-1}, memory);  h_t = RNN([E y_{t-1}; c_t], h_{t-1})
    "luong" / "dot"  attend with the new state (Luong's global attention, without input feeding):
                         h_t = RNN(E y_{t-1}, h_{t-1});  c_t = attn(h_t, memory)
    both:            logits_t = W_o tanh(W_c [h_t; c_t])        (without attention: W_o h_t)

Luong-style decoding does not feed anything computed after the RNN back into it, so teacher-forced
training runs the RNN over all target steps in one fused call; Bahdanau-style runs a step loop.

Token ids follow `gridseq.data.vocab`: <pad>=0, <bos>=2, <eos>=3. Decoding starts from <bos>, stops a
sequence at its <eos> (kept in the output) and never generates <pad> or <bos>.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq._validation import check_choice, check_positive_int, check_probability
from gridseq.constants import BOS, EOS, PAD
from gridseq.errors import ConfigError, ShapeError
from gridseq.nn.attention import KINDS as ATTENTION_KINDS
from gridseq.nn.attention import Attention, AttentionMemory
from gridseq.nn.recurrent import IMPLS, MODES, Recurrent, State
from gridseq.shapes import check_tokens

_BANNED = (PAD, BOS)  # ids a decoder never generates


class Decoded(NamedTuple):
    """What `Decoder.greedy` and `Decoder.beam_search` return.

    Attributes:
        tokens: (B, U') int64 generated ids, <eos> included, <pad> (0) after it; U' is the longest
            output in the batch (at most max_length). A sequence that hit max_length has no <eos>.
        scores: (B,) the log-probability of each output (over ids other than <pad> and <bos>);
            for beam search divided by length ** length_penalty.
        logits: (B, U', V) the raw logits of each step (greedy only; zero after a sequence's <eos>).
        attention: (B, U', S) attention weights of each step when asked for, else None.
    """

    tokens: Tensor
    scores: Tensor
    logits: Tensor | None = None
    attention: Tensor | None = None


class StateBridge(nn.Module):
    """Maps a condition vector to an RNN's initial state: h_0 = tanh(W z + b) for every layer.

    Args:
        input_size: Z, the size of the condition (e.g. an encoder's final state, an image vector).
        hidden_size: H of the RNN to start.
        num_layers: L of the RNN to start. Default: 1.
        mode: "rnn", "lstm" or "gru"; an LSTM also gets its cell state c_0 from z. Default: "lstm".

    Shape:
        - z: (B, Z) float.  - Output: h (L, B, H), for LSTM (h, c) — `Recurrent`'s state layout.

    Example:
        >>> h, c = StateBridge(10, 16, num_layers=2, mode="lstm")(torch.randn(4, 10))
        >>> h.shape, c.shape
        (torch.Size([2, 4, 16]), torch.Size([2, 4, 16]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, mode: str = "lstm") -> None:
        super().__init__()
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.mode = check_choice(mode, "mode", MODES)
        self.width = 2 if mode == "lstm" else 1  # (h, c) or h
        self.proj = nn.Linear(input_size, self.width * num_layers * hidden_size)

    def forward(self, z: Tensor) -> State:
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.input_size:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ShapeError(f"expected a condition z of shape (B, Z) = (B, {self.input_size}), got {got}.")
        batch = z.shape[0]
        out = torch.tanh(self.proj(z)).view(batch, self.width, self.num_layers, self.hidden_size)
        parts = out.permute(1, 2, 0, 3).contiguous()  # (width, L, B, H)
        return (parts[0], parts[1]) if self.mode == "lstm" else parts[0]


def select_state(state: State, index: Tensor) -> State:
    """The state of batch rows `index`: h (L, B, H) → (L, B', H), for LSTM both parts."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)


class Decoder(nn.Module):
    """A conditional RNN decoder over a target vocabulary, with optional attention over a memory.

    Args:
        vocab_size: V, the target vocabulary (ids 0-3 are <pad>, <unk>, <bos>, <eos>).
        embedding_dim: E, size of the target token embedding.
        hidden_size: H, the RNN's units.
        num_layers: L, stacked RNN layers. Default: 1.
        mode: "rnn" (Elman), "lstm" or "gru". Default: "lstm".
        attention: "bahdanau", "luong", "dot" or None (no memory; the initial state is the only
            condition). See the module docstring for how the styles differ. Default: "bahdanau".
        memory_size: Hm, size of a memory position; required with attention.
        dropout: on the token embeddings, between stacked layers and before the output layer,
            in training only. Default: 0.
        impl: "auto", "fused" or "reference", see `Recurrent`. Default: "auto".

    Shape:
        - state: h (L, B, H), for LSTM (h, c) — `Recurrent`'s layout; None means zeros.
        - memory: (B, S, Hm) float; mask: (B, S) bool, True at valid positions (None: all valid).
        - forward: tokens (B, U) int64 (the inputs: <bos> then the target shifted right) → logits (B, U, V).
        - step: tokens (B,) → logits (B, V), the new state and attention weights (B, S) or None.

    Example:
        >>> dec = Decoder(vocab_size=12, embedding_dim=8, hidden_size=16, mode="gru", memory_size=20)
        >>> memory, state = torch.randn(3, 7, 20), torch.zeros(1, 3, 16)
        >>> dec(torch.tensor([[2, 5, 6], [2, 7, 3], [2, 4, 0]]), state, memory).shape
        torch.Size([3, 3, 12])
        >>> out = dec.beam_search(state, memory, beam=4, max_length=5, return_attention=True)
        >>> out.tokens.shape[0], out.tokens.shape[1] <= 5, out.attention.shape[2]
        (3, True, 7)
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int = 1,
        mode: str = "lstm",
        attention: str | None = "bahdanau",
        memory_size: int | None = None,
        dropout: float = 0.0,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int(vocab_size, "vocab_size", minimum=EOS + 1)  # room for the specials
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.mode = check_choice(mode, "mode", MODES)
        self.attention_kind = None if attention in (None, "none") else check_choice(attention, "attention", ATTENTION_KINDS + ("none",))
        self.dropout = check_probability(dropout, "dropout")
        check_choice(impl, "impl", IMPLS)
        if self.attention_kind is None:
            if memory_size is not None:
                raise ConfigError(f"memory_size={memory_size!r} is given but attention is None; a decoder reads a memory through attention only.")
            self.memory_size = None
        else:
            self.memory_size = check_positive_int(memory_size, "memory_size")
        feeds_context = self.attention_kind == "bahdanau"
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.rnn = Recurrent(
            mode, embedding_dim + (self.memory_size if feeds_context else 0), hidden_size, num_layers,
            dropout=self.dropout if num_layers > 1 else 0.0, impl=impl,
        )
        if self.attention_kind is not None:
            self.attention = Attention(hidden_size, self.memory_size, self.attention_kind)
            self.combine = nn.Linear(hidden_size + self.memory_size, hidden_size)  # W_c
        else:
            self.attention = None
            self.combine = None
        self.drop = nn.Dropout(self.dropout)
        self.out = nn.Linear(hidden_size, vocab_size)  # W_o
        banned = torch.zeros(vocab_size, dtype=torch.bool)
        banned[list(_BANNED)] = True
        self.register_buffer("_banned", banned, persistent=False)  # not weights: kept out of state_dict

    # ---- conditioning -----------------------------------------------------------------------------

    def prepare(self, memory: Tensor | AttentionMemory | None, mask: Tensor | None = None) -> AttentionMemory | None:
        """The memory projected once for every step (`Attention.prepare`), or None without attention."""
        if self.attention is None:
            if memory is not None:
                raise ConfigError("this decoder was built with attention=None, so it takes no memory; pass memory=None "
                                  "or build it with attention='bahdanau' or 'luong' and memory_size.")
            return None
        if memory is None:
            raise ShapeError(f"this decoder attends over a memory (attention={self.attention_kind!r}): pass memory of shape (B, S, {self.memory_size}).")
        if isinstance(memory, AttentionMemory):
            return memory
        return self.attention.prepare(memory, mask)

    def initial_state(self, state: State | None, batch: int, device: torch.device | str | None = None) -> State:
        """`state` checked against this decoder's layout, or zeros for `batch` sequences."""
        if state is None:
            zeros = torch.zeros(self.num_layers, batch, self.hidden_size, device=device, dtype=self.out.weight.dtype)
            return (zeros, zeros) if self.mode == "lstm" else zeros
        return self.rnn._check_state(state, batch)

    def _batch(self, state, memory: AttentionMemory | None, batch_size: int | None) -> tuple[int, torch.device]:
        if state is not None:
            h = state[0] if isinstance(state, (tuple, list)) else state
            if isinstance(h, Tensor) and h.dim() == 3:
                if memory is not None and memory.values.shape[0] != h.shape[1]:
                    raise ShapeError(
                        f"the state holds B={h.shape[1]} sequences (dim 1 of (L, B, H)) but the memory holds "
                        f"{memory.values.shape[0]}; they must match."
                    )
                return h.shape[1], h.device
        if memory is not None:
            return memory.values.shape[0], memory.values.device
        if batch_size is None:
            raise ShapeError("cannot tell the batch size: pass an initial state, a memory or batch_size=B.")
        return check_positive_int(batch_size, "batch_size"), self.out.weight.device

    # ---- one step ---------------------------------------------------------------------------------

    def _run(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """The RNN over (B, T, F) inputs with no padding — without `Recurrent.forward`'s input checks,
        which would cost a host sync per decoding step."""
        if self.rnn.impl == "reference":
            out, final, _ = self.rnn._run_reference(x, None, state, record=False)
            return out, final
        return self.rnn.rnn(x, state)

    def _output(self, h: Tensor, context: Tensor | None) -> Tensor:
        """Logits from the RNN output h (..., H) and the attention context (..., Hm)."""
        if context is not None:
            h = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))  # the attentional hidden state
        return self.out(self.drop(h))

    def _step(self, emb: Tensor, state: State, memory: AttentionMemory | None) -> tuple[Tensor, State, Tensor | None]:
        context = weights = None
        if self.attention_kind == "bahdanau":
            top = (state[0] if isinstance(state, tuple) else state)[-1]  # (B, H): the last layer's h_{t-1}
            context, weights = self.attention.attend(top, memory)
            emb = torch.cat([emb, context], dim=-1)  # (B, E + Hm)
        out, state = self._run(emb.unsqueeze(1), state)
        h = out[:, 0]  # (B, H)
        if self.attention is not None and self.attention_kind != "bahdanau":
            context, weights = self.attention.attend(h, memory)
        return self._output(h, context), state, weights

    def step(self, tokens: Tensor, state: State, memory: AttentionMemory | None = None) -> tuple[Tensor, State, Tensor | None]:
        """One decoding step.

        Args:
            tokens: (B,) int64, the previous output (or <bos>).
            state: the RNN state (see `initial_state`).
            memory: the prepared memory (`prepare(memory, mask)`), or None without attention.

        Returns:
            logits (B, V), the new state, and attention weights (B, S) (None without attention).
        """
        if not isinstance(tokens, Tensor) or tokens.dim() != 1:
            got = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise ShapeError(f"step takes one token per sequence, tokens of shape (B,), got {got}.")
        return self._step(self.drop(self.embedding(tokens)), state, memory)

    # ---- teacher forcing --------------------------------------------------------------------------

    def forward(
        self, tokens: Tensor, state: State | None = None, memory: Tensor | AttentionMemory | None = None,
        mask: Tensor | None = None, *, teacher_forcing: float = 1.0,
    ) -> Tensor:
        """Logits for every target step given the previous target tokens (teacher forcing).

        Args:
            tokens: (B, U) int64 decoder inputs: <bos> followed by the target without its last token.
            state: initial state, or None (zeros).
            memory: (B, S, Hm) (or a prepared memory) with attention; None without.
            mask: (B, S) bool, True at valid memory positions, or None.
            teacher_forcing: probability of feeding the true previous token; otherwise (per sequence
                and step) the model's own most likely token is fed — scheduled sampling. Default: 1.

        Returns:
            (B, U, V) logits; step t predicts the token after tokens[:, t].
        """
        tokens, _ = check_tokens(tokens, vocab_size=self.vocab_size, name="tokens")
        if isinstance(teacher_forcing, bool) or not isinstance(teacher_forcing, (int, float)) or not 0 <= teacher_forcing <= 1:
            raise ConfigError(f"teacher_forcing must be a number in [0, 1], got {teacher_forcing!r}.")
        batch, steps = tokens.shape
        memory = self.prepare(memory, mask)
        if memory is not None and memory.values.shape[0] != batch:
            raise ShapeError(f"tokens hold B={batch} sequences but the memory holds {memory.values.shape[0]}; they must match.")
        state = self.initial_state(state, batch, tokens.device)
        emb = self.drop(self.embedding(tokens))  # (B, U, E)
        if teacher_forcing >= 1 and self.attention_kind != "bahdanau":
            out, _ = self._run(emb, state)  # (B, U, H): every step in one call
            context = None if self.attention is None else self.attention.attend(out, memory)[0]  # (B, U, Hm)
            return self._output(out, context)
        logits: list[Tensor] = []
        for t in range(steps):
            e = emb[:, t]
            if t > 0 and teacher_forcing < 1:
                own = self.drop(self.embedding(self._ban(logits[-1].detach()).argmax(-1)))  # (B, E)
                use_own = torch.rand(batch, 1, device=tokens.device) >= teacher_forcing
                e = torch.where(use_own, own, e)
            step_logits, state, _ = self._step(e, state, memory)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)  # (B, U, V)

    # ---- decoding ---------------------------------------------------------------------------------

    def greedy(
        self, state: State | None = None, memory: Tensor | AttentionMemory | None = None, mask: Tensor | None = None,
        *, max_length: int, batch_size: int | None = None, return_attention: bool = False,
    ) -> Decoded:
        """Feed back the most likely token until every sequence has produced <eos> or `max_length` tokens.

        Returns:
            `Decoded` with tokens (B, U'), scores (B,) (log-probabilities), logits (B, U', V) and,
            with `return_attention`, attention (B, U', S).
        """
        check_positive_int(max_length, "max_length")
        memory = self.prepare(memory, mask)
        batch, device = self._batch(state, memory, batch_size)
        state = self.initial_state(state, batch, device)
        tokens = torch.full((batch,), BOS, dtype=torch.long, device=device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        scores = torch.zeros(batch, device=device)
        out_tokens, out_logits, out_weights = [], [], []
        for _ in range(max_length):
            logits, state, weights = self.step(tokens, state, memory)
            logp = F.log_softmax(self._ban(logits), dim=-1)  # (B, V)
            best = logp.argmax(dim=-1).masked_fill(finished, PAD)  # (B,)
            scores = scores + logp.gather(1, best.unsqueeze(1)).squeeze(1).masked_fill(finished, 0.0)
            out_tokens.append(best)
            out_logits.append(logits.masked_fill(finished.unsqueeze(1), 0.0))
            if return_attention and weights is not None:
                out_weights.append(weights.masked_fill(finished.unsqueeze(1), 0.0))
            finished = finished | (best == EOS)
            tokens = best
            if bool(finished.all()):
                break
        attention = torch.stack(out_weights, dim=1) if out_weights else None
        return Decoded(torch.stack(out_tokens, dim=1), scores, torch.stack(out_logits, dim=1), attention)

    def beam_search(
        self, state: State | None = None, memory: Tensor | AttentionMemory | None = None, mask: Tensor | None = None,
        *, beam: int, max_length: int, length_penalty: float = 0.0, batch_size: int | None = None,
        return_attention: bool = False,
    ) -> Decoded:
        """Keep the `beam` best partial outputs of every sequence; return the best finished one.

        All B × beam hypotheses run as one batch. A hypothesis that produced <eos> stays in its beam with
        a fixed score (it can only be followed by <pad>, at no cost) until better ones push it out;
        a sequence is done when all its hypotheses are finished, the search when all sequences are done
        or `max_length` tokens were generated. Hypotheses are ranked by log p / length ** length_penalty,
        so 0 ranks by probability and larger values favour longer outputs. `beam=1` is greedy decoding.

        Returns:
            `Decoded` with tokens (B, U'), scores (B,) (the ranking score) and, with
            `return_attention`, attention (B, U', S); logits is None.
        """
        beam = check_positive_int(beam, "beam")
        check_positive_int(max_length, "max_length")
        if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
            raise ConfigError(f"length_penalty must be a number (0 ranks by probability), got {length_penalty!r}.")
        memory = self.prepare(memory, mask)
        batch, device = self._batch(state, memory, batch_size)
        state = self.initial_state(state, batch, device)
        vocab = self.vocab_size
        rows = torch.arange(batch, device=device).repeat_interleave(beam)  # (N,) with N = B*beam
        state = select_state(state, rows)
        memory = None if memory is None else memory.select(rows)  # beams never move between sequences
        tokens = torch.full((batch * beam,), BOS, dtype=torch.long, device=device)
        scores = torch.full((batch, beam), float("-inf"), device=device)
        scores[:, 0] = 0.0  # one live hypothesis to start, so the first step does not pick duplicates
        finished = torch.zeros(batch, beam, dtype=torch.bool, device=device)
        lengths = torch.zeros(batch, beam, dtype=torch.long, device=device)  # tokens generated, <eos> included
        history = torch.zeros(batch * beam, 0, dtype=torch.long, device=device)
        attn_history: Tensor | None = None
        pad_only = torch.full((vocab,), float("-inf"), device=device)
        pad_only[PAD] = 0.0
        offsets = (torch.arange(batch, device=device) * beam).unsqueeze(1)  # (B, 1)
        best_keys = scores
        for t in range(1, max_length + 1):
            logits, state, weights = self.step(tokens, state, memory)
            logp = F.log_softmax(self._ban(logits), dim=-1).view(batch, beam, vocab)
            logp = torch.where(finished.unsqueeze(-1), pad_only, logp)  # finished: only <pad>, no cost
            candidates = scores.unsqueeze(-1) + logp  # (B, beam, V)
            keys = candidates
            if length_penalty:
                cand_len = torch.where(finished, lengths, t).unsqueeze(-1).to(candidates.dtype)  # (B, beam, 1)
                keys = candidates / cand_len.pow(length_penalty)
            best_keys, index = keys.view(batch, beam * vocab).topk(beam, dim=1)  # (B, beam), best first
            origin, token = index // vocab, index % vocab
            scores = candidates.view(batch, beam * vocab).gather(1, index)
            was_finished = finished.gather(1, origin)
            lengths = torch.where(was_finished, lengths.gather(1, origin), t)
            finished = was_finished | (token == EOS)
            flat = (offsets + origin).view(-1)  # (N,) the hypothesis each new one extends
            history = torch.cat([history.index_select(0, flat), token.view(-1, 1)], dim=1)
            if return_attention and weights is not None:
                w = weights.index_select(0, flat).masked_fill(was_finished.view(-1, 1), 0.0).unsqueeze(1)
                attn_history = w if attn_history is None else torch.cat([attn_history.index_select(0, flat), w], dim=1)
            state = select_state(state, flat)
            tokens = token.view(-1)
            if bool((finished | torch.isinf(scores)).all()):
                break
        steps = history.shape[1]
        best = history.view(batch, beam, steps)[:, 0]  # topk sorts: hypothesis 0 ranks first
        used = max(int(lengths[:, 0].max()), 1)
        attention = None if attn_history is None else attn_history.view(batch, beam, steps, -1)[:, 0, :used]
        return Decoded(best[:, :used], best_keys[:, 0], None, attention)

    def _ban(self, logits: Tensor) -> Tensor:
        """Logits (..., V) with <pad> and <bos> made impossible."""
        return logits.masked_fill(self._banned, float("-inf"))

    def extra_repr(self) -> str:
        return f"attention={self.attention_kind!r}"
