"""Transposed convolutions for Loihi 2: the exact rewrite into a sparse synapse matrix (docs/DESIGN.md §13).

NetX cannot build a ``convT`` layer (lava-dl 0.6.0 ``netx/hdf5.py`` raises ``NotImplementedError``; lava-dl
issue 210), and Lava's ``Conv`` process has no input dilation. A transposed convolution is a linear map
from the Ci·H·W input neurons to the Co·H'·W' output neurons, so it is exactly one ``lava.proc.sparse``
``Sparse`` synapse whose weight matrix is the map's matrix [out_neurons, in_neurons] (both flattened
C-major, index ``c·H·W + h·W + w``, as torch's ``flatten``). Per step, for a window [T, N, Ci, H, W]::

    y[co, i, j] = Σ_{ci, h, w, a, b : i = h·s − p + a, j = w·s − p + b} weight[ci, co, a, b] · x[ci, h, w]

with ``weight`` [Ci, Co, k, k] in torch's ``ConvTranspose2d`` layout, s = stride, p = padding, and the
output size ``(H − 1)·s − 2p + k + output_padding`` (torch's rule). Given the pair (output (co, i, j),
input (ci, h, w)) the tap is unique: a = i − h·s + p, b = j − w·s + p. Every matrix entry is therefore
**one** kernel weight (never a sum of two), so the matrix holds exactly the same numbers as the kernel:
8-bit kernel weights give 8-bit synapses with nothing rounded twice, and the integer sums equal the
integer transposed convolution bit for bit. Tests compare all three forms (this matrix, torch's
``conv_transpose2d`` and :func:`as_stuffed_conv`, the textbook rewrite into a stride-1 convolution of the
zero-stuffed input with the flipped kernel) in float64 and in integers, and the matrix on Lava's own
``Sparse`` model.

An ordinary convolution (the VAE encoder's) is the adjoint of the transposed convolution with the same weight
tensor: ``conv2d(x, w)`` [Co, Ho, Wo] of x [Ci, H, W] is ``M.T @ x`` where M is the transposed conv from Co·Ho·Wo
to Ci·H·W neurons with weight w read as [in = Co, out = Ci, k, k] and the output padding that restores H
(:func:`conv_matrix`). Entry for entry, conv2d's output (co, i, j) meets input (ci, h, w) through the tap
h = i·s − p + a, w = j·s − p + b — the same relation, read the other way — so again every entry is one kernel
weight and the matrix is exact.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse as sp


def out_size(size: int, kernel: int, stride: int, padding: int, output_padding: int) -> int:
    """Output length of a transposed convolution along one axis (torch's ``ConvTranspose2d`` rule)."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def check_params(kernel: int, stride: int, padding: int, output_padding: int) -> None:
    """ValueError unless stride ≥ 1, 0 ≤ padding, 0 ≤ output_padding < stride (torch's constraint)."""
    if stride < 1 or padding < 0 or output_padding < 0 or kernel < 1:
        raise ValueError(f"transposed conv needs kernel, stride ≥ 1 and padding, output_padding ≥ 0; got k={kernel}, "
                         f"s={stride}, p={padding}, op={output_padding}")
    if output_padding >= stride:
        raise ValueError(f"output_padding {output_padding} must be smaller than the stride {stride}")


def transposed_matrix(weight: np.ndarray, in_shape: tuple[int, int, int], stride: int, padding: int,
                      output_padding: int = 0) -> sp.csr_matrix:
    """The transposed convolution as a sparse matrix [Co·H'·W', Ci·H·W] (C-major rows and columns).

    Args:
        weight: [Ci, Co, k, k] (torch's ConvTranspose2d layout, groups = 1), any numeric dtype (kept).
        in_shape: (Ci, H, W) of one step's input.
    Returns:
        csr matrix M with ``M @ x.flatten() == conv_transpose2d(x, weight, ...).flatten()``; entries whose
        kernel weight is zero are left out (they are no synapse), each stored entry is one kernel weight.
    """
    w = np.asarray(weight)
    ci, co, kh, kw = w.shape
    c, h, wd = (int(d) for d in in_shape)
    if c != ci:
        raise ValueError(f"weight has {ci} input channels, the input {c}")
    check_params(max(kh, kw), stride, padding, output_padding)
    ho, wo = out_size(h, kh, stride, padding, output_padding), out_size(wd, kw, stride, padding, output_padding)
    if ho < 1 or wo < 1:
        raise ValueError(f"transposed conv of a {h}×{wd} input gives an empty {ho}×{wo} output")
    # every (input pixel, tap) pair lands on one output pixel; keep those inside the output
    hh, aa = np.meshgrid(np.arange(h), np.arange(kh), indexing="ij")
    oi = hh * stride - padding + aa  # [H, kh]
    ww, bb = np.meshgrid(np.arange(wd), np.arange(kw), indexing="ij")
    oj = ww * stride - padding + bb  # [W, kw]
    rows, cols, vals = [], [], []
    for a in range(kh):
        for b in range(kw):
            taps = w[:, :, a, b]  # [Ci, Co]
            nz_ci, nz_co = np.nonzero(taps)
            if nz_ci.size == 0:
                continue
            hv = np.flatnonzero((oi[:, a] >= 0) & (oi[:, a] < ho))
            wv = np.flatnonzero((oj[:, b] >= 0) & (oj[:, b] < wo))
            if hv.size == 0 or wv.size == 0:
                continue
            ph, pw = np.meshgrid(hv, wv, indexing="ij")
            ph, pw = ph.ravel(), pw.ravel()  # input pixels that reach the output through tap (a, b)
            in_pix = ph * wd + pw
            out_pix = oi[ph, a] * wo + oj[pw, b]
            # all (ci, co) channel pairs × all pixels
            cols.append((nz_ci[:, None] * (h * wd) + in_pix[None, :]).ravel())
            rows.append((nz_co[:, None] * (ho * wo) + out_pix[None, :]).ravel())
            vals.append(np.repeat(taps[nz_ci, nz_co], in_pix.size))
    n_out, n_in = co * ho * wo, ci * h * wd
    if not rows:
        return sp.csr_matrix((n_out, n_in), dtype=w.dtype)
    r, cidx, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    m = sp.coo_matrix((v, (r, cidx)), shape=(n_out, n_in)).tocsr()
    if m.nnz != v.size:  # coo → csr would have summed duplicates: impossible by the uniqueness of the tap
        raise AssertionError("two kernel taps mapped to one synapse")
    m.sort_indices()
    return m


def conv_matrix(weight: np.ndarray, in_shape: tuple[int, int, int], stride: int, padding: int) -> sp.csr_matrix:
    """An ordinary convolution (groups = 1) as a sparse matrix [Co·Ho·Wo, Ci·H·W] (C-major rows and columns).

    Args:
        weight: [Co, Ci, k, k] (torch's Conv2d layout), any numeric dtype (kept).
        in_shape: (Ci, H, W) of one step's input.
    Returns:
        csr matrix M with ``M @ x.flatten() == conv2d(x, weight, stride, padding).flatten()``: the transpose of
        :func:`transposed_matrix` of the same weight tensor (module docstring), zero-weight taps left out.
    """
    w = np.asarray(weight)
    co, ci, kh, kw = w.shape
    c, h, wd = (int(d) for d in in_shape)
    if c != ci:
        raise ValueError(f"weight has {ci} input channels, the input {c}")
    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"a {kh}×{kw} kernel does not fit the {h}×{wd} input")
    op_h, op_w = h - out_size(ho, kh, stride, padding, 0), wd - out_size(wo, kw, stride, padding, 0)
    if op_h != op_w:
        raise ValueError(f"non-square remainders {op_h}, {op_w}: conv_matrix takes square maps")
    m = transposed_matrix(w, (co, ho, wo), stride, padding, op_h).T.tocsr()
    m.sort_indices()
    return m


def as_stuffed_conv(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int,
                    output_padding: int = 0) -> torch.Tensor:
    """The transposed convolution of x [B, Ci, H, W] as an ordinary stride-1 ``conv2d``: s − 1 zeros
    inserted between input pixels, padded k − 1 − p before and k − 1 − p + output_padding after, convolved
    with the kernel flipped in space and with its channel axes swapped ([Co, Ci, k, k]). Needs p ≤ k − 1."""
    b, ci, h, w = x.shape
    k = weight.shape[2]
    if padding > k - 1:
        raise ValueError(f"padding {padding} > k − 1 = {k - 1}: the stuffed form would crop")
    stuffed = x.new_zeros(b, ci, (h - 1) * stride + 1, (w - 1) * stride + 1)
    stuffed[:, :, ::stride, ::stride] = x
    lo, hi = k - 1 - padding, k - 1 - padding + output_padding
    stuffed = F.pad(stuffed, (lo, hi, lo, hi))
    return F.conv2d(stuffed, weight.flip(2, 3).transpose(0, 1))


def conv_transpose_window(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int,
                          output_padding: int) -> torch.Tensor:
    """torch's ``conv_transpose2d`` on every step of [T, N, Ci, H, W] → [T, N, Co, H', W'] (x's dtype)."""
    T, N = x.shape[:2]
    y = F.conv_transpose2d(x.reshape(T * N, *x.shape[2:]), weight, bias, stride=stride, padding=padding,
                           output_padding=output_padding)
    return y.reshape(T, N, *y.shape[1:])


def qconv_transpose(p: torch.Tensor, weight: np.ndarray, stride: int, padding: int,
                    output_padding: int) -> torch.Tensor:
    """Integer transposed conv of payloads [T, N, Ci, H, W] (integer-valued, ≥ 0) → int64 sums
    [T, N, Co, H', W'], exact and unwrapped: the sums of Lava's ``Sparse`` model (``PySparseModelBitAcc``:
    ``weights · s_in`` in int32, no clamp, like ``Dense``). Computed in float64, exact below 2⁵³ (every
    |sum| ≤ Σ|w|·max p < 2³¹ here)."""
    w = torch.as_tensor(np.asarray(weight), dtype=torch.float64, device=p.device)
    y = conv_transpose_window(p.to(torch.float64), w, None, stride, padding, output_padding)
    return y.round_().to(torch.int64)
