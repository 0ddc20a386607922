"""The reference recurrence of one layer and direction as a `torch.autograd.Function`.

`Recurrent`'s reference path runs the gate math of `gridseq.nn.cells` one step at a time. Through
autograd, every step records a dozen operator nodes and its backward replays them one by one; most of
a reference LSTM training step's time went there (10,557 operator calls per step against 358 for the fused
kernel, benchmarks/results/profiles.txt). This function runs the same equations with autograd off and
writes the backward out by hand:

- the forward fills preallocated (T, B, ·) buffers — the states and the gate activations;
- the backward first forms, for all steps at once, every factor that does not depend on the gradient
  flowing back in time (the gate derivatives, with the length mask folded in), so the loop over time
  keeps only what is truly recurrent: a few multiply-adds and one (B, G·H) × (G·H, H) matmul per step;
- the gradient of `weight_hh` is one GEMM over all steps and the gradient of `bias_hh` one sum.

The numbers are those of the step functions (tests/nn/test_recurrence_function.py checks values and
gradients against them, padded and not). Padded steps follow `Recurrent`'s convention: the state passes
through unchanged and the output is zero, so a direction run over a time-reversed input starts at each
sequence's own end.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def run(mode: str, nonlinearity: str, xp: Tensor, state: tuple[Tensor, ...], w_hh: Tensor, b_hh: Tensor,
        mask: Tensor | None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One direction of one layer, forwards in time.

    Args:
        mode: "rnn", "lstm" or "gru".  nonlinearity: "tanh" or "relu" (Elman only).
        xp: (T, B, G*H) input projections, `x W_ih^T + b_ih` at every step.
        state: (h0,) or, for LSTM, (h0, c0), each (B, H).
        w_hh: (G*H, H).  b_hh: (G*H,).
        mask: (T, B, 1) bool, True at valid steps, or None (all valid).

    Returns:
        outputs (T, B, H), zero at padded steps, and the final state as `state`.
    """
    if mode == "lstm":
        out, h, c = _LSTM.apply(xp, state[0], state[1], w_hh, b_hh, mask)
        return out, (h, c)
    fn = _GRU if mode == "gru" else _Elman
    out, h = fn.apply(xp, state[0], w_hh, b_hh, mask, nonlinearity)
    return out, (h,)


def _outputs(hs: Tensor, mask: Tensor | None) -> Tensor:
    """(T, B, H) outputs from the states hs (T+1, B, H): at a valid step the state is that step's h', at a
    padded one the output is zero."""
    return hs[1:].clone() if mask is None else hs[1:].masked_fill(~mask, 0.0)


def _carried(grad: Tensor | None, like: Tensor) -> Tensor:
    """The gradient carried back in time from the final state (zeros when the state was not used)."""
    return torch.zeros_like(like) if grad is None else grad.clone()


def _weight_grads(dpre: Tensor, hs: Tensor) -> tuple[Tensor, Tensor]:
    """dW_hh (G*H, H) = Σ_t dpre_tᵀ h_{t-1} as one GEMM, and db_hh (G*H,): dpre (T, B, G*H), hs (T+1, B, H)."""
    flat = dpre.flatten(0, 1)
    return flat.t() @ hs[:-1].flatten(0, 1), flat.sum(0)


class _LSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, c0, w_hh, b_hh, mask):
        time, batch, _ = xp.shape
        hidden = h0.shape[-1]
        # g = tanh(pre_g) = 2σ(2 pre_g) - 1: with the g rows of the projection and of W_hh doubled, one
        # sigmoid covers all four gates (torch's tanh costs 2.7x its sigmoid here; docs/PERFORMANCE.md, optimisation 8)
        xpb = xp + b_hh  # both biases at once, for every step
        xpb[..., 2 * hidden : 3 * hidden] *= 2
        w_t = w_hh.detach().clone()
        w_t[2 * hidden : 3 * hidden] *= 2
        w_t = w_t.t()
        hs = xp.new_empty(time + 1, batch, hidden)  # states h_{-1} .. h_{T-1} (after the mask)
        cs = xp.new_empty(time + 1, batch, hidden)
        gates = xp.new_empty(time, batch, 4 * hidden)  # i, f, σ(2 pre_g) = (1 + g) / 2, o
        tcs = xp.new_empty(time, batch, hidden)  # tanh(c'), the new cell before the mask
        hs[0], cs[0] = h0, c0
        for t in range(time):
            i, f, s, o = torch.addmm(xpb[t], hs[t], w_t, out=gates[t]).sigmoid_().chunk(4, dim=1)
            # f c + i (2s - 1); unmasked, straight into the state buffers
            c = torch.addcmul((f * cs[t]).sub_(i), i, s, value=2, out=cs[t + 1] if mask is None else None)
            if mask is None:
                torch.mul(o, torch.tanh(c, out=tcs[t]), out=hs[t + 1])
            else:
                h = o * torch.tanh(c, out=tcs[t])
                torch.where(mask[t], h, hs[t], out=hs[t + 1])
                torch.where(mask[t], c, cs[t], out=cs[t + 1])
        ctx.save_for_backward(w_hh, hs, cs, gates, tcs, mask)
        return _outputs(hs, mask), hs[-1].clone(), cs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h, d_c):
        w_hh, hs, cs, gates, tcs, mask = ctx.saved_tensors
        m = None if mask is None else mask.to(gates.dtype)
        time, batch, hidden = tcs.shape
        i, f, s, o = gates.chunk(4, dim=2)
        g = 2 * s - 1
        # every factor of the gate gradients that does not depend on the gradient flowing back:
        # d pre_(i,f,g) = e · P_ifg and d pre_o = δh · P_o, with e = δc + δh · Q the gradient of c'
        p_ifg = torch.cat([g * i * (1 - i), cs[:-1] * f * (1 - f), i * (1 - g * g)], dim=2).view(time, batch, 3, hidden)
        p_o = tcs * o * (1 - o)
        q = o * (1 - tcs * tcs)
        keep_c = f  # δc_{t-1} = e · f
        if m is not None:  # padded steps: no gate gradient, the state gradients pass through
            p_ifg = p_ifg * m.unsqueeze(2)
            p_o, q = p_o * m, q * m
            keep_c = torch.lerp(torch.ones_like(f), f, m)
            d_out = d_out * m
            skip = 1 - m
        dpre = gates.new_empty(time, batch, 4 * hidden)
        dh = _carried(d_h, hs[0])
        dc = _carried(d_c, cs[0])
        for t in range(time - 1, -1, -1):
            dh_t = dh + d_out[t]
            e = torch.addcmul(dc, dh_t, q[t])
            torch.mul(p_ifg[t], e.unsqueeze(1), out=dpre[t, :, : 3 * hidden].view(batch, 3, hidden))
            torch.mul(dh_t, p_o[t], out=dpre[t, :, 3 * hidden :])
            dc = e * keep_c[t]
            dh = dpre[t] @ w_hh if m is None else torch.addmm(dh * skip[t], dpre[t], w_hh)
        dw, db = _weight_grads(dpre, hs)
        return dpre, dh, dc, dw, db, None


class _GRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, w_hh, b_hh, mask, nonlinearity):
        time, batch, _ = xp.shape
        hidden = h0.shape[-1]
        hs = xp.new_empty(time + 1, batch, hidden)
        gates = xp.new_empty(time, batch, 3 * hidden)  # r, z, n
        hp = xp.new_empty(time, batch, 3 * hidden)  # W_hh h + b_hh; r scales its n part
        hs[0] = h0
        w_t = w_hh.t()
        for t in range(time):
            torch.addmm(b_hh, hs[t], w_t, out=hp[t])
            a = gates[t]
            torch.add(xp[t, :, : 2 * hidden], hp[t, :, : 2 * hidden], out=a[:, : 2 * hidden]).sigmoid_()
            r, z, n = a.chunk(3, dim=1)
            torch.addcmul(xp[t, :, 2 * hidden :], r, hp[t, :, 2 * hidden :], out=n).tanh_()
            if mask is None:
                torch.lerp(n, hs[t], z, out=hs[t + 1])  # (1 - z) n + z h
            else:
                torch.where(mask[t], torch.lerp(n, hs[t], z), hs[t], out=hs[t + 1])
        ctx.save_for_backward(w_hh, hs, gates, hp, mask)
        return _outputs(hs, mask), hs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h):
        w_hh, hs, gates, hp, mask = ctx.saved_tensors
        m = None if mask is None else mask.to(gates.dtype)
        time, batch, hidden = d_out.shape
        r, z, n = gates.chunk(3, dim=2)
        hn = hp[..., 2 * hidden :]
        # d pre_n = δh (1 - z)(1 - n²); d pre_r = d pre_n · hn · r(1 - r); d pre_z = δh (h - n) z(1 - z);
        # the projected state's n part gets d pre_n · r; δh_{t-1} = (d hp) W_hh + δh z
        a = (1 - z) * (1 - n * n)
        p_x = torch.cat([a * hn * r * (1 - r), (hs[:-1] - n) * z * (1 - z), a], dim=2)
        p_h = torch.cat([p_x[..., : 2 * hidden], a * r], dim=2)
        keep = z
        if m is not None:
            p_x, p_h = p_x * m, p_h * m
            keep = torch.lerp(torch.ones_like(z), z, m)
            d_out = d_out * m
        p_x, p_h = p_x.view(time, batch, 3, hidden), p_h.view(time, batch, 3, hidden)
        dxp = gates.new_empty(time, batch, 3 * hidden)
        dhp = gates.new_empty(time, batch, 3 * hidden)
        dh = _carried(d_h, hs[0])
        for t in range(time - 1, -1, -1):
            dh_t = (dh + d_out[t]).unsqueeze(1)
            torch.mul(p_x[t], dh_t, out=dxp[t].view(batch, 3, hidden))
            torch.mul(p_h[t], dh_t, out=dhp[t].view(batch, 3, hidden))
            dh = torch.addmm(dh_t.squeeze(1) * keep[t], dhp[t], w_hh)
        dw, db = _weight_grads(dhp, hs)
        return dxp, dh, dw, db, None, None


class _Elman(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, w_hh, b_hh, mask, nonlinearity):
        time, batch, hidden = xp.shape
        xpb = xp + b_hh
        hs = xp.new_empty(time + 1, batch, hidden)
        hs[0] = h0
        w_t = w_hh.t()
        act = torch.tanh_ if nonlinearity == "tanh" else torch.relu_
        for t in range(time):
            if mask is None:
                act(torch.addmm(xpb[t], hs[t], w_t, out=hs[t + 1]))
            else:
                torch.where(mask[t], act(torch.addmm(xpb[t], hs[t], w_t)), hs[t], out=hs[t + 1])
        ctx.nonlinearity = nonlinearity
        ctx.save_for_backward(w_hh, hs, mask)
        return _outputs(hs, mask), hs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h):
        w_hh, hs, mask = ctx.saved_tensors
        new = hs[1:]  # h' at every valid step; padded steps get no gradient below
        m = None if mask is None else mask.to(new.dtype)
        p = 1 - new * new if ctx.nonlinearity == "tanh" else (new > 0).to(new.dtype)
        if m is not None:
            p, d_out, skip = p * m, d_out * m, 1 - m
        dpre = torch.empty_like(new)
        dh = _carried(d_h, hs[0])
        for t in range(new.shape[0] - 1, -1, -1):
            torch.mul(dh + d_out[t], p[t], out=dpre[t])
            dh = dpre[t] @ w_hh if m is None else torch.addmm(dh * skip[t], dpre[t], w_hh)
        dw, db = _weight_grads(dpre, hs)
        return dpre, dh, dw, db, None, None
