"""The CUBA neuron recurrence, written once for its float and fixed-point forms (docs/DESIGN.md §3).

Per step t of a window ``a`` [T, N, ...] (each sample starts from u = v = 0)::

    u ← wrap_u(decay_u(u) + inject(a[t]))
    v ← clip_v(decay_v(v) + u + bias)
    spike = v > threshold;  v ← 0 where spike

The float CUBA (``cuba_lif``) uses ``decay(x) = (1 − d)·x`` and no wrap or clip; the fixed-point one
(``q_cuba_lif``) the 12-bit truncating decays, the ``<< 6`` input shift, the 24-bit wrap of u and the clip
of v (:mod:`tcja_deploy.conversion.loihi2`).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

Op = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def cuba_recurrence(a: torch.Tensor, *, decay_u: Op, decay_v: Op, threshold, bias=0, inject: Op = _identity,
                    wrap_u: Op = _identity, clip_v: Op = _identity, out_dtype: Optional[torch.dtype] = None,
                    on_current: Optional[Callable[[torch.Tensor], None]] = None) -> torch.Tensor:
    """Spikes [T, N, ...] (0/1 in ``out_dtype``, default a's dtype) of a CUBA layer driven by ``a``.

    ``on_current(u)`` is called with the current of every step (calibration reads its range).
    """
    u = torch.zeros_like(a[0])
    v = torch.zeros_like(a[0])
    out = torch.empty(a.shape, dtype=out_dtype or a.dtype, device=a.device)
    zero = torch.zeros((), dtype=v.dtype, device=v.device)
    for t in range(a.shape[0]):
        u = wrap_u(decay_u(u) + inject(a[t]))
        if on_current is not None:
            on_current(u)
        v = clip_v(decay_v(v) + u + bias)
        s = v > threshold
        v = torch.where(s, zero, v)
        out[t] = s
    return out
