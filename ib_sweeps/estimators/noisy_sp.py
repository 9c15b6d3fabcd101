"""Sample-propagation (SP) estimator for noisy networks, in bits.

Goldfeld, van den Berg, Greenewald, Melnyk, Nguyen, Kingsbury & Polyanskiy (2019),
"Estimating Information Flow in Deep Neural Networks" (ICML). Each layer adds
Gaussian noise to its output: T = S + Z, S = f(T_prev), Z ~ N(0, sigma^2 I_d).
From samples s_1..s_n of S, h(T) = h(P_S * N_sigma) is estimated by the entropy of
the Gaussian mixture g = (1/n) sum_j N(s_j, sigma^2 I) (the SP estimator, error
c^d / sqrt(n) over sub-Gaussian P_S), itself computed by Monte Carlo: ``n_mc``
points t = s_i + sigma z per input, z ~ N(0, I). With
e_j(t) = (sigma^2 ||z||^2 - ||t - s_j||^2) / (2 sigma^2) and L(t) = log (1/n) sum_j exp e_j(t),

    h(g) = (d/2) log(2 pi e sigma^2) - E[L(t)],

exact because E||z||^2 = d (using that instead of the sampled ||z||^2 removes
most of the Monte Carlo variance; separated centres give L = -log n exactly).

* ``information_plane(activity, labels)``: rows are the NOISELESS outputs s(x_i)
  of a layer whose input is deterministic (the first layer), X uniform over rows.
  Then h(T|X) = (d/2) log(2 pi e sigma^2) exactly, I(X;T) = -E[L(t)], and
  I(Y;T) = E[L_y(t) - L(t)], L_y the same mixture over the rows of t's class.
* ``information_plane_conditional(samples, labels)``: samples (n_inputs, n_cond, d),
  samples[i] are draws of S | X = x_i (x_i re-run through the noisy network), for
  deeper layers. h(T) is the mixture over ALL n_inputs * n_cond samples (more
  centres, smaller plug-in bias than one per input, and the mixture over the
  samples of each input is then exactly its component) and h(T | X = x_i) the
  mixture over samples[i]. The same Monte Carlo points serve every term
  (common random numbers): I(X;T) = E[L_x(t) - L(t)], I(Y;T) = E[L_y(t) - L(t)],
  which is 0 for identical inputs up to plug-in bias and log2 n_inputs exactly
  for separated ones. ``n_mc`` is still the number of points per input (cost
  n_cond times the array level, not n_cond^2): point k of input i is centred on
  its sample (o_i + k) mod n_cond, o_i uniform at random, so every sample is
  equally likely (stratified when n_mc >= n_cond) even when the samples are
  not exchangeable. ``pooled_information_plane`` (W epochs as W samples of T
  given each input) uses this form; identical epochs give the single-epoch
  estimate to rounding.
* ``network_planes(samples, labels)``: every layer of a noisy network, the first
  by the exact form, the others conditionally. A trial (``model.noise_std``)
  gets the samples by re-running each measured input ``n_cond`` times through
  the noisy network (:meth:`ib_sweeps.train.TrainingCore.noisy_samples`).
* ``entropy(samples)``: h(g) in bits for centres ``samples`` (n, d).

I(X;T) is clipped to [0, log2 n_inputs] and I(Y;T) to [0, H(Y)]. Results are
deterministic given ``seed``. Activity is first shifted by one of its rows
(entropy is translation invariant), so constant activity gives exactly 0.

Cost: O(n_inputs * n_mc * N * d) for N mixture centres (N = n_inputs, or
n_inputs * n_cond), i.e. O(n^2 n_mc d) at the array level. Memory: the
exponents of ``block`` points against all N centres at a time,
~ 8 * max(block, n_mc) * N bytes (8 MiB for N = 4096 at the default).
Measured (one core): 4096 x 10 units, n_mc = 10: ~0.6 s, Monte Carlo std
~0.005 bits (n_mc = 1: 0.1 s, ~0.01 bits; n_mc = 100: ~8-13 s).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from scipy.special import logsumexp

from ib_sweeps.estimators import discrete
from ib_sweeps.estimators.base import Estimator, check_activity
from ib_sweeps.types import PositiveFloat, Seed

MAX_SAMPLES = 10_000  # n_mc and n_cond: each multiplies the cost (n_cond also the memory) of a measurement

LN2 = float(np.log(2.0))


def mixture_log_ratios(
    centres: np.ndarray,
    classes: np.ndarray,
    n_cond: int,
    sigma: float,
    n_mc: int,
    rng: np.random.Generator,
    offsets: np.ndarray,
    block: int = 256,
) -> tuple[float, float, float]:
    """Monte Carlo means (E[L], E[L_y - L], E[L_x - L]) in nats; see the module docstring.

    ``centres``: (n_inputs * n_cond, d) float64, the n_cond samples of each input
    consecutive, inputs sorted by ``classes`` (int (n_inputs,)). Input i gets
    ``n_mc`` points s + sigma z, point k centred on its sample (offsets[i] + k) mod n_cond.
    """
    n_inputs, n = len(classes), len(centres)
    _, cls = np.unique(classes, return_inverse=True)
    starts = np.flatnonzero(np.r_[True, np.diff(cls) != 0])  # first input of each class
    col_starts = starts * n_cond
    class_size = np.diff(np.r_[col_starts, n])
    # e_j = w . s_j + b_j + a with w = t / sigma^2, b_j = -|s_j|^2 / (2 sigma^2),
    # a = -|s|^2 / (2 sigma^2) - z . s / sigma (s the point's own centre): one matmul
    # per block against [s_j, b_j]; a is constant per row and is added after the logsumexp.
    sq = np.einsum("ij,ij->i", centres, centres)
    aug = np.hstack([centres, -sq[:, None] / (2 * sigma**2)])
    per_block = max(1, block // n_mc)
    sums = np.zeros(3)
    for i0 in range(0, n_inputs, per_block):
        inputs = np.arange(i0, min(i0 + per_block, n_inputs))
        point_input = np.repeat(inputs, n_mc)
        own = point_input * n_cond + (offsets[point_input] + np.tile(np.arange(n_mc), len(inputs))) % n_cond
        s = centres[own]
        z = rng.standard_normal(s.shape)
        a = -sq[own] / (2 * sigma**2) - np.einsum("ij,ij->i", z, s) / sigma
        e = np.hstack([s / sigma**2 + z / sigma, np.ones((len(s), 1))]) @ aug.T
        if n_cond > 1:
            cols = point_input[:, None] * n_cond + np.arange(n_cond)
            l_x = logsumexp(np.take_along_axis(e, cols, axis=1), axis=1) + a - np.log(n_cond)
        else:
            l_x = np.zeros(len(s))  # the own centre alone: e = 0 exactly in exact arithmetic
        total, top = _class_sums(e, col_starts)  # (points, classes): sum_j exp(e_j - top) over each class
        peak = top.max(axis=1)
        l_all = np.log(np.einsum("ik,ik->i", total, np.exp(top - peak[:, None]))) + peak + a - np.log(n)
        rows, point_class = np.arange(len(s)), cls[point_input]
        l_y = np.log(total[rows, point_class]) + top[rows, point_class] + a - np.log(class_size[point_class])
        sums += [l_all.sum(), (l_y - l_all).sum(), (l_x - l_all).sum()]
    m_all, m_y, m_x = sums / (n_inputs * n_mc)
    return float(m_all), float(m_y), float(m_x)


def _class_sums(e: np.ndarray, col_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum_j exp(e[:, j] - top), top) over each column range starting at ``col_starts``, top its row max.

    Overwrites ``e``. Integer counts stay exact when all exponents are equal (constant activity).
    """
    top = np.maximum.reduceat(e, col_starts, axis=1)
    for k, (c0, c1) in enumerate(zip(col_starts, np.r_[col_starts[1:], e.shape[1]], strict=True)):
        e[:, c0:c1] -= top[:, k : k + 1]
    np.maximum(e, -700.0, out=e)  # exp(-700) ~ 1e-304 is negligible next to the 1 at the top; underflow is slow
    np.exp(e, out=e)
    return np.add.reduceat(e, col_starts, axis=1), top


class NoisySP(Estimator):
    """Goldfeld et al. (2019) sample-propagation estimator of a layer with additive N(0, sigma^2 I) noise."""

    method: Literal["noisy_sp"] = "noisy_sp"
    sigma: PositiveFloat = 0.1  # std of the noise added to each unit (same units as the activity)
    n_mc: int = Field(default=10, ge=1, le=MAX_SAMPLES, strict=True)  # Monte Carlo points per input
    seed: Seed = 0
    block: int = Field(default=256, ge=16, strict=True)  # points per block (memory ~ 8 * block * N bytes)
    # In a trial: noisy passes of each measured input through the network, the samples of S | X = x_i of
    # layers past the first (:meth:`network_planes`); the array-level methods take the samples they are given.
    n_cond: int = Field(default=8, ge=1, le=MAX_SAMPLES, strict=True)
    uses_noisy_samples: ClassVar[bool] = True

    @property
    def samples_per_input(self) -> int:
        return self.n_cond

    @classmethod
    def from_network(cls, raw: dict, model) -> dict:
        """Without ``sigma``, on a noisy network: measure through the network's own noise (``model.noise_std``)."""
        std = model.get("noise_std") if isinstance(model, dict) else None
        if type(std) not in (int, float) or std <= 0 or "sigma" in raw:
            return raw
        return {**raw, "sigma": float(std)}

    def check_network(self, model, where: str) -> None:
        """Needs a noisy network, and ``sigma`` equal to its noise."""
        given = model.noise_std
        std = given or 0.0
        if not std:
            raise ValueError(
                f"{where} (noisy_sp): needs a noisy network, but model.noise_std is "
                f"{'absent' if given is None else given}; "
                "allowed: model.noise_std > 0 (Goldfeld et al. 2019: it measures through the network's own "
                "noise), or another estimator for a deterministic network (kde_upper adds noise of its own)"
            )
        if self.sigma != std:
            raise ValueError(
                f"{where}.sigma: got {self.sigma}, but model.noise_std is {std}; allowed: equal, or "
                "leave sigma out (it is then taken from model.noise_std)"
            )

    def _run(self, centres, classes, n_cond: int) -> tuple[float, float, float]:
        rng = np.random.default_rng(self.seed)
        # Random first sample per input (own stream, so the noise draws do not depend on n_cond).
        offsets = np.random.default_rng([self.seed, 1]).integers(n_cond, size=len(classes))
        return mixture_log_ratios(centres, classes, n_cond, self.sigma, self.n_mc, rng, offsets, self.block)

    def _plane(self, a, y):
        """(I(X;T), I(Y;T)) in bits of T = activity + N(0, sigma^2 I), one row per input."""
        return self._pooled_plane(a[:, None, :], y)

    def information_plane_conditional(self, samples, labels) -> tuple[float, float]:
        """(I(X;T), I(Y;T)) in bits from ``samples`` (n_inputs, n_cond, d...) of S | X = x_i, labels (n_inputs,).

        Trailing axes beyond the third are flattened into one vector per sample.
        """
        s = np.asarray(samples)
        if s.ndim < 3:
            raise ValueError(f"samples must be (n_inputs, n_cond, n_units); got shape {s.shape}")
        flat, y = check_activity(s.reshape(len(s), -1), labels)
        return self._pooled_plane(flat.reshape(s.shape[0], s.shape[1], -1), y)

    def network_planes(self, samples, labels) -> np.ndarray:
        """(n_layers, 2) (I(X;T), I(Y;T)) in bits of every layer of a noisy network, T_l = S_l + Z_l.

        ``samples``: one array (n_inputs, n_cond, d...) per layer, the noiseless
        outputs S_l of n_cond noisy passes of each input (noise on the layers
        before l). The first layer's input is deterministic, so its samples are
        all equal and the exact h(T|X) of :meth:`information_plane` is used on
        ``samples[0][:, 0]``; deeper layers use :meth:`information_plane_conditional`.
        """
        first = [self.information_plane(samples[0][:, 0], labels)] if len(samples) else []
        rest = [self.information_plane_conditional(s, labels) for s in samples[1:]]
        return np.array(first + rest, dtype=np.float64).reshape(-1, 2)

    def _pooled_plane(self, samples, labels):
        """Conditional estimate of validated ``samples`` (n_inputs, n_cond, d); pooled epochs are the samples."""
        n_inputs, n_cond, _ = samples.shape
        order = np.argsort(labels, kind="stable")
        centres = samples[order].reshape(n_inputs * n_cond, -1).astype(np.float64)
        centres -= centres[0]  # one translation of all samples; exact zeros for constant activity
        _, m_y, m_x = self._run(centres, labels[order], n_cond)
        h_y = discrete.entropy(np.unique(labels, return_inverse=True)[1].ravel())
        return min(max(0.0, m_x / LN2), float(np.log2(n_inputs))), min(max(0.0, m_y / LN2), h_y)

    def entropy(self, samples) -> float:
        """SP estimate h(P_n * N(0, sigma^2 I)) in bits for samples (n, d) of S."""
        a, _ = check_activity(samples)
        centres = np.asarray(a - a[0], dtype=np.float64)
        m_all, _, _ = self._run(centres, np.zeros(len(a), dtype=np.int64), 1)
        return float((0.5 * a.shape[1] * np.log(2 * np.pi * np.e * self.sigma**2) - m_all) / LN2)

    def mutual_information(self, a, b) -> float:
        raise NotImplementedError(
            "noisy_sp estimates information through a Gaussian noise channel T = S + Z; paired samples "
            "(a, b) define no such channel. Use information_plane (one row per input) or "
            "information_plane_conditional (samples of S given each input)."
        )
