"""Recurrent layers over a whole sequence, one layer and one direction per op, hand-written BPTT.

The caller computes the input projection of every time step up front with ONE GEMM,
xp = x W_ih^T + b_ih (T, B, G), through F.linear (whose backward gives dW_ih, db_ih and dx).
Each op here then runs the Python time loop with one (B, H) @ (H, G) GEMM per step for the
hidden projection h W_hh^T + b_hh, the gate math in place on the step's (B, G) slab, and saves
the activations its backward needs. The backward walks the steps in reverse, producing the
pre-activation gradients of all steps; dW_hh is then ONE GEMM over all of them.

The recurrence of each batch row is independent of the others, so the rows are shared out over
nanoframe.parallel's threads, each running the whole time loop on its rows with a one-thread
BLAS: no synchronisation per step. (Per-step GEMMs are small; on the BLAS's own threads they were
measured several times slower on a busy machine, their start-up and spinning dominating.)

Gate layouts are torch's: LSTM i, f, g, o; GRU r, z, n. With reverse=True the sequence is read
from the last step to the first; outputs stay in time order (y[t] belongs to input step t).

Sequences of different lengths (PackedSequence, nanoframe/nn/utils/rnn.py) come as a padded batch
sorted by decreasing length with batch_sizes (T,): at time step t only rows [0, batch_sizes[t])
are real. The other rows carry their state through the step unchanged (so a reversed sequence
starts from h0 at its own last step) and output 0; gradients flow past such a step untouched. The
op then also returns the final state of every row (h_n; the last output no longer is) as one more
row after the outputs.
"""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.parallel import GEMM_UNIT, parallel_for


def _sigmoid_(a):
    """sigmoid in place, as 0.5 (1 + tanh(a / 2)): no overflow for any a."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def _over_rows(fn, t, b, g, h):
    """Run fn(b0, b1) over batch-row chunks; the work per row of T steps of a (H, G) GEMM and the
    elementwise gate math."""
    parallel_for(fn, b, work_per_item=t * g * (h // GEMM_UNIT + 12))


def _steps(t, reverse):
    return range(t - 1, -1, -1) if reverse else range(t)


def _real_end(batch_sizes, step, b0, b1):
    """End of the real rows of [b0, b1) at time `step`: rows [b0, e) run the step, rows [e, b1)
    have ended (or, reversed, not yet begun). All of them without batch_sizes."""
    return b1 if batch_sizes is None else min(b1, max(b0, int(batch_sizes[step])))


def _final_rows(out, extra):
    """out with the final-state rows `extra` (k, B, H) appended after it."""
    full = np.empty((out.shape[0] + len(extra),) + out.shape[1:], dtype=out.dtype)
    full[:out.shape[0]] = out
    full[out.shape[0]:] = extra
    return full


def _hidden_weight_grads(ctx, dpre, hs, w_hh):
    """dW_hh = sum_k dpre_k^T h_{k-1} as one GEMM, db_hh = sum_k dpre_k; None where not needed."""
    g = dpre.shape[2]
    need_w, need_b = ctx.needs_input_grad[1:3]
    gw = dpre.reshape(-1, g).T @ hs[:-1].reshape(-1, hs.shape[2]) if need_w else None
    gb = dpre.sum(axis=(0, 1)) if need_b and ctx.has_bias else None
    return gw, gb


def _in_time_order(a, reverse):
    """Arrays saved in processing order, as the input's time order."""
    return np.ascontiguousarray(a[::-1]) if reverse else a


class LSTMLayerFunction(Function):
    """xp (T, B, 4H), w_hh (4H, H), b_hh (4H,) or None, h0 (B, H), c0 (B, H) -> out (T + 1, B, H):
    out[:T] the hidden states in time order, out[T] the last cell state c_n (the caller slices
    h_n from out[:T]; with batch_sizes, out is (T + 2, B, H) and out[T + 1] is h_n).

        i, f, o = sigmoid(.), g = tanh(.) of xp_t + h W_hh^T + b_hh
        c' = f c + i g,   h' = o tanh(c')
    Backward per step (dh, dc flowing back from later steps):
        do = dh tanh(c'),  dc += dh o (1 - tanh(c')^2),  di = dc g,  dg = dc i,  df = dc c,
        dc_prev = dc f,  pre-activation grads: di i (1 - i), df f (1 - f), dg (1 - g^2), do o (1 - o)
        dh_prev = dpre W_hh
    Saves the post-activation gates (T, B, 4H), the cell states (T + 1, B, H), tanh(c) and the
    hidden states (T + 1, B, H), all in processing order.
    """

    @staticmethod
    def forward(ctx, xp, w_hh, b_hh, h0, c0, *, reverse, batch_sizes=None):
        t, b, g4 = xp.shape
        h = g4 // 4
        xpb = xp + b_hh if b_hh is not None else xp   # b_hh folded into the input projection once
        hs = np.empty((t + 1, b, h), dtype=xp.dtype)
        cs = np.empty((t + 1, b, h), dtype=xp.dtype)
        gates = np.empty((t, b, g4), dtype=xp.dtype)
        tanh_c = np.empty((t, b, h), dtype=xp.dtype)
        out = np.empty((t + 1, b, h), dtype=xp.dtype)
        hs[0], cs[0] = h0, c0
        w_t = w_hh.T

        def rows(b0, b1):                              # the whole sequence for batch rows [b0, b1)
            for k, step in enumerate(_steps(t, reverse)):
                e = _real_end(batch_sizes, step, b0, b1)
                if e < b1:                             # rows past their length: carry h, c; output 0
                    hs[k + 1, e:b1], cs[k + 1, e:b1], out[step, e:b1] = hs[k, e:b1], cs[k, e:b1], 0
                    gates[k, e:b1] = 0
                    tanh_c[k, e:b1] = 0
                r = slice(b0, e)
                a = gates[k, r]                        # (b, 4H): i f g o
                np.matmul(hs[k, r], w_t, out=a)
                a += xpb[step, r]
                _sigmoid_(a[:, :2 * h])                # i, f
                np.tanh(a[:, 2 * h:3 * h], out=a[:, 2 * h:3 * h])   # g
                _sigmoid_(a[:, 3 * h:])                # o
                c = cs[k + 1, r]
                np.multiply(a[:, h:2 * h], cs[k, r], out=c)          # f c
                c += a[:, :h] * a[:, 2 * h:3 * h]                     # + i g
                np.tanh(c, out=tanh_c[k, r])
                np.multiply(a[:, 3 * h:], tanh_c[k, r], out=hs[k + 1, r])   # h' = o tanh(c')
                out[step, r] = hs[k + 1, r]

        _over_rows(rows, t, b, g4, h)
        out[t] = cs[t]
        ctx.save_for_backward(w_hh, gates, cs, tanh_c, hs)
        ctx.reverse, ctx.has_bias, ctx.batch_sizes = reverse, b_hh is not None, batch_sizes
        return out if batch_sizes is None else _final_rows(out, hs[t:])   # + h_n

    @staticmethod
    def backward(ctx, gout):
        w_hh, gates, cs, tanh_c, hs = ctx.saved_tensors
        t, b, g4 = gates.shape
        h = g4 // 4
        dpre = np.empty_like(gates)                    # (T, B, 4H) pre-activation grads, processing order
        batch_sizes = ctx.batch_sizes
        dh_all = (np.zeros((b, h), dtype=gates.dtype) if batch_sizes is None
                  else gout[t + 1].astype(gates.dtype, copy=True))      # the gradient of h_n
        dc_all = gout[t].astype(gates.dtype, copy=True)                # the gradient of c_n

        def rows(b0, b1):
            tmp_all = np.empty((b1 - b0, h), dtype=gates.dtype)
            for k, step in reversed(list(enumerate(_steps(t, ctx.reverse)))):
                e = _real_end(batch_sizes, step, b0, b1)
                dpre[k, e:b1] = 0                      # rows past their length: dh, dc flow past
                r = slice(b0, e)
                dh, dc, tmp = dh_all[r], dc_all[r], tmp_all[:e - b0]
                a, d = gates[k, r], dpre[k, r]
                i, f, g, o = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
                dh += gout[step, r]
                tc = tanh_c[k, r]
                np.multiply(dh, tc, out=d[:, 3 * h:])                 # do
                d[:, 3 * h:] *= o
                np.subtract(1.0, o, out=tmp)
                d[:, 3 * h:] *= tmp                                   # do o (1 - o)
                np.multiply(tc, tc, out=tmp)
                np.subtract(1.0, tmp, out=tmp)
                tmp *= o
                tmp *= dh
                dc += tmp                                             # dc += dh o (1 - tanh(c')^2)
                np.multiply(dc, g, out=d[:, :h])                      # di
                d[:, :h] *= i
                np.subtract(1.0, i, out=tmp)
                d[:, :h] *= tmp                                       # di i (1 - i)
                np.multiply(dc, cs[k, r], out=d[:, h:2 * h])          # df
                d[:, h:2 * h] *= f
                np.subtract(1.0, f, out=tmp)
                d[:, h:2 * h] *= tmp                                  # df f (1 - f)
                np.multiply(dc, i, out=d[:, 2 * h:3 * h])             # dg
                np.multiply(g, g, out=tmp)
                np.subtract(1.0, tmp, out=tmp)
                d[:, 2 * h:3 * h] *= tmp                              # dg (1 - g^2)
                dc *= f                                               # dc_prev
                np.matmul(d, w_hh, out=dh)                            # dh_prev

        _over_rows(rows, t, b, g4, h)
        dh, dc = dh_all, dc_all
        gw, gb = _hidden_weight_grads(ctx, dpre, hs, w_hh)
        need_x, _, _, need_h0, need_c0 = ctx.needs_input_grad
        return (_in_time_order(dpre, ctx.reverse) if need_x else None, gw, gb,
                dh if need_h0 else None, dc if need_c0 else None)


class GRULayerFunction(Function):
    """xp (T, B, 3H), w_hh (3H, H), b_hh (3H,) or None, h0 (B, H) -> hidden states (T, B, H)
    (with batch_sizes, (T + 1, B, H): h_n last).

        hp = h W_hh^T + b_hh   (b_hh stays inside: the n gate uses r * (W_hn h + b_hn))
        r = sigmoid(xp_r + hp_r), z = sigmoid(xp_z + hp_z), n = tanh(xp_n + r hp_n)
        h' = (1 - z) n + z h
    Backward per step: dn = dh (1 - z), dz = dh (h - n), dh_prev = dh z + dhp W_hh with
        dn_pre = dn (1 - n^2), dr_pre = dn_pre hp_n r (1 - r), dz_pre = dz z (1 - z),
        dxp = (dr_pre, dz_pre, dn_pre) and dhp = (dr_pre, dz_pre, dn_pre r).
    Saves r, z, n (T, B, 3H), hp_n (T, B, H) and the hidden states.
    """

    @staticmethod
    def forward(ctx, xp, w_hh, b_hh, h0, *, reverse, batch_sizes=None):
        t, b, g3 = xp.shape
        h = g3 // 3
        hs = np.empty((t + 1, b, h), dtype=xp.dtype)
        rzn = np.empty((t, b, g3), dtype=xp.dtype)
        hpn = np.empty((t, b, h), dtype=xp.dtype)
        out = np.empty((t, b, h), dtype=xp.dtype)
        hs[0] = h0
        w_t = w_hh.T

        def rows(b0, b1):
            hp_all = np.empty((b1 - b0, g3), dtype=xp.dtype)
            for k, step in enumerate(_steps(t, reverse)):
                e = _real_end(batch_sizes, step, b0, b1)
                if e < b1:                             # rows past their length: carry h; output 0
                    hs[k + 1, e:b1], out[step, e:b1] = hs[k, e:b1], 0
                    rzn[k, e:b1], hpn[k, e:b1] = 0, 0
                r, hp = slice(b0, e), hp_all[:e - b0]
                np.matmul(hs[k, r], w_t, out=hp)
                if b_hh is not None:
                    hp += b_hh
                a, x = rzn[k, r], xp[step, r]
                np.add(x[:, :2 * h], hp[:, :2 * h], out=a[:, :2 * h])
                _sigmoid_(a[:, :2 * h])                               # r, z
                hpn[k, r] = hp[:, 2 * h:]
                n = a[:, 2 * h:]
                np.multiply(a[:, :h], hp[:, 2 * h:], out=n)           # r hp_n
                n += x[:, 2 * h:]
                np.tanh(n, out=n)
                hn = hs[k + 1, r]
                np.subtract(hs[k, r], n, out=hn)
                hn *= a[:, h:2 * h]
                hn += n                                               # h' = n + z (h - n)
                out[step, r] = hn

        _over_rows(rows, t, b, g3, h)
        ctx.save_for_backward(w_hh, rzn, hpn, hs)
        ctx.reverse, ctx.has_bias, ctx.batch_sizes = reverse, b_hh is not None, batch_sizes
        return out if batch_sizes is None else _final_rows(out, hs[t:])   # + h_n

    @staticmethod
    def backward(ctx, gout):
        w_hh, rzn, hpn, hs = ctx.saved_tensors
        t, b, g3 = rzn.shape
        h = g3 // 3
        dxp = np.empty_like(rzn)
        dhp = np.empty_like(rzn)
        batch_sizes = ctx.batch_sizes
        dh_all = (np.zeros((b, h), dtype=rzn.dtype) if batch_sizes is None
                  else gout[t].astype(rzn.dtype, copy=True))            # the gradient of h_n

        def rows(b0, b1):
            tmp_all = np.empty((b1 - b0, h), dtype=rzn.dtype)
            for k, step in reversed(list(enumerate(_steps(t, ctx.reverse)))):
                e = _real_end(batch_sizes, step, b0, b1)
                dxp[k, e:b1], dhp[k, e:b1] = 0, 0      # rows past their length: dh flows past
                rows_ = slice(b0, e)
                dh, tmp = dh_all[rows_], tmp_all[:e - b0]
                a = rzn[k, rows_]
                r, z, n = a[:, :h], a[:, h:2 * h], a[:, 2 * h:]
                dx, dp = dxp[k, rows_], dhp[k, rows_]
                dh += gout[step, rows_]
                np.subtract(1.0, z, out=tmp)
                np.multiply(dh, tmp, out=dx[:, 2 * h:])               # dn = dh (1 - z)
                np.multiply(n, n, out=tmp)
                np.subtract(1.0, tmp, out=tmp)
                dx[:, 2 * h:] *= tmp                                  # dn_pre
                np.subtract(hs[k, rows_], n, out=tmp)
                np.multiply(dh, tmp, out=dx[:, h:2 * h])              # dz
                np.subtract(1.0, z, out=tmp)
                tmp *= z
                dx[:, h:2 * h] *= tmp                                 # dz_pre
                np.multiply(dx[:, 2 * h:], hpn[k, rows_], out=dx[:, :h])   # dr
                np.subtract(1.0, r, out=tmp)
                tmp *= r
                dx[:, :h] *= tmp                                      # dr_pre
                dp[:, :2 * h] = dx[:, :2 * h]
                np.multiply(dx[:, 2 * h:], r, out=dp[:, 2 * h:])      # d hp_n = dn_pre r
                dh *= z                                               # the direct path z h
                dh += dp @ w_hh                                       # dh_prev

        _over_rows(rows, t, b, g3, h)
        dh = dh_all
        gw, gb = _hidden_weight_grads(ctx, dhp, hs, w_hh)
        need_x, _, _, need_h0 = ctx.needs_input_grad
        return (_in_time_order(dxp, ctx.reverse) if need_x else None, gw, gb, dh if need_h0 else None)


class RNNLayerFunction(Function):
    """xp (T, B, H), w_hh (H, H), b_hh (H,) or None, h0 (B, H) -> hidden states (T, B, H) (with
    batch_sizes, (T + 1, B, H): h_n last):
        h' = tanh(xp_t + h W_hh^T + b_hh)   (or relu)
    Backward: dpre = dh (1 - h'^2) (tanh) or dh [h' > 0] (relu), dh_prev = dpre W_hh.
    Saves the hidden states (T + 1, B, H)."""

    @staticmethod
    def forward(ctx, xp, w_hh, b_hh, h0, *, reverse, nonlinearity, batch_sizes=None):
        t, b, h = xp.shape
        xpb = xp + b_hh if b_hh is not None else xp
        hs = np.empty((t + 1, b, h), dtype=xp.dtype)
        out = np.empty((t, b, h), dtype=xp.dtype)
        hs[0] = h0
        w_t = w_hh.T

        def rows(b0, b1):
            for k, step in enumerate(_steps(t, reverse)):
                e = _real_end(batch_sizes, step, b0, b1)
                if e < b1:                             # rows past their length: carry h; output 0
                    hs[k + 1, e:b1], out[step, e:b1] = hs[k, e:b1], 0
                r = slice(b0, e)
                a = hs[k + 1, r]
                np.matmul(hs[k, r], w_t, out=a)
                a += xpb[step, r]
                if nonlinearity == "tanh":
                    np.tanh(a, out=a)
                else:
                    np.maximum(a, 0, out=a)
                out[step, r] = a

        _over_rows(rows, t, b, h, h)
        ctx.save_for_backward(w_hh, hs)
        ctx.reverse, ctx.has_bias, ctx.nonlinearity = reverse, b_hh is not None, nonlinearity
        ctx.batch_sizes = batch_sizes
        return out if batch_sizes is None else _final_rows(out, hs[t:])   # + h_n

    @staticmethod
    def backward(ctx, gout):
        w_hh, hs = ctx.saved_tensors
        t, b, h = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        dpre = np.empty((t, b, h), dtype=hs.dtype)
        batch_sizes = ctx.batch_sizes
        dh_all = (np.zeros((b, h), dtype=hs.dtype) if batch_sizes is None
                  else gout[t].astype(hs.dtype, copy=True))             # the gradient of h_n

        def rows(b0, b1):
            for k, step in reversed(list(enumerate(_steps(t, ctx.reverse)))):
                e = _real_end(batch_sizes, step, b0, b1)
                dpre[k, e:b1] = 0                      # rows past their length: dh flows past
                r = slice(b0, e)
                dh = dh_all[r]
                dh += gout[step, r]
                d, hk = dpre[k, r], hs[k + 1, r]
                if ctx.nonlinearity == "tanh":
                    np.multiply(hk, hk, out=d)
                    np.subtract(1.0, d, out=d)
                    d *= dh
                else:
                    np.multiply(dh, hk > 0, out=d)
                np.matmul(d, w_hh, out=dh)

        _over_rows(rows, t, b, h, h)
        dh = dh_all
        gw, gb = _hidden_weight_grads(ctx, dpre, hs, w_hh)
        need_x, _, _, need_h0 = ctx.needs_input_grad
        return (_in_time_order(dpre, ctx.reverse) if need_x else None, gw, gb, dh if need_h0 else None)
