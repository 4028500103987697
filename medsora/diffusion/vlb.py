"""The variational-bound term for a learned variance (improved DDPM / DiT ``learn_sigma``).

diffusers schedulers sample with a learned variance (``variance_type="learned_range"``) but do not
ship the training-side pieces: the Gaussian KL between the true posterior q(x_{t-1}|x_t, x_0) and
the model's p(x_{t-1}|x_t), and the discretised Gaussian decoder likelihood used at t = 0. They
are written here after Nichol & Dhariwal (2021), "Improved denoising diffusion probabilistic
models", Sec. 3.1, with the model mean detached so that this term trains only the variance, as in
their hybrid objective.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["normal_kl", "discretized_gaussian_log_likelihood", "PosteriorTables"]


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, in nats (broadcasting)."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_standard_normal_cdf(x: Tensor) -> Tensor:
    # The tanh approximation used by the reference implementation; keeps parity with DiT's numbers.
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: Tensor, means: Tensor, log_scales: Tensor) -> Tensor:
    """Log-likelihood of data in [-1, 1] quantised to 256 bins under N(means, e^(2·log_scales)).

    Args:
        x, means, log_scales: same shape (any), x the target values.
    Returns:
        elementwise log-probabilities (nats), same shape.
    """
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )


class PosteriorTables:
    """Per-timestep coefficients of q(x_{t-1} | x_t, x_0), computed in float64 from the betas.

    Args:
        betas: the scheduler's betas, length num_train_timesteps.
    """

    def __init__(self, betas: Tensor):
        betas = betas.double()
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, 0)
        abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
        variance = betas * (1.0 - abar_prev) / (1.0 - abar)
        # variance[0] is 0; the reference clips its log to the next value so that log stays finite.
        self.log_variance_clipped = torch.log(torch.cat([variance[1:2], variance[1:]])).float()
        self.log_betas = torch.log(betas).float()
        self.mean_coef_x0 = (betas * abar_prev.sqrt() / (1.0 - abar)).float()
        self.mean_coef_xt = ((1.0 - abar_prev) * alphas.sqrt() / (1.0 - abar)).float()
        self.sqrt_abar = abar.sqrt().float()
        self.sqrt_one_minus_abar = (1.0 - abar).sqrt().float()

    @staticmethod
    def _at(table: Tensor, t: Tensor, ndim: int) -> Tensor:
        return table.to(t.device)[t].view(-1, *([1] * (ndim - 1)))

    def predict_x0(self, prediction: Tensor, xt: Tensor, t: Tensor, prediction_type: str) -> Tensor:
        """x0 implied by an epsilon or v prediction at timesteps ``t`` (B) for ``xt`` (B×…)."""
        a = self._at(self.sqrt_abar, t, xt.ndim)
        s = self._at(self.sqrt_one_minus_abar, t, xt.ndim)
        if prediction_type == "epsilon":
            return (xt - s * prediction) / a
        if prediction_type == "v_prediction":
            return a * xt - s * prediction
        raise ValueError(f"prediction_type {prediction_type!r}: expected 'epsilon' or 'v_prediction'")

    def posterior_mean(self, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """Mean of q(x_{t-1} | x_t, x_0)."""
        return self._at(self.mean_coef_x0, t, xt.ndim) * x0 + self._at(self.mean_coef_xt, t, xt.ndim) * xt

    def learned_log_variance(self, var_values: Tensor, t: Tensor) -> Tensor:
        """``learned_range``: the model's output in [-1, 1] interpolates log β_t and log β̃_t."""
        frac = (var_values + 1.0) / 2.0
        max_log = self._at(self.log_betas, t, var_values.ndim)
        min_log = self._at(self.log_variance_clipped, t, var_values.ndim)
        return frac * max_log + (1.0 - frac) * min_log

    def vlb(self, mean_prediction: Tensor, var_values: Tensor, x0: Tensor, xt: Tensor, t: Tensor,
            prediction_type: str, reduce=None) -> Tensor:
        """The per-sample bound term L_t in bits per dimension (B), decoder NLL at t = 0.

        Args:
            mean_prediction: the epsilon/v prediction, B×…; detach it to train only the variance.
            var_values: the model's variance channels, B×…, same shape.
            x0, xt: clean and noised samples, B×…; t: B integer timesteps.
            reduce: per-element B×… -> B (default the mean over all but the batch axis).
        """
        model_x0 = self.predict_x0(mean_prediction, xt, t, prediction_type)
        model_mean = self.posterior_mean(model_x0, xt, t)
        model_log_var = self.learned_log_variance(var_values, t)
        true_mean = self.posterior_mean(x0, xt, t)
        true_log_var = self._at(self.log_variance_clipped, t, xt.ndim).expand_as(xt)
        dims = tuple(range(1, xt.ndim))
        reduce = reduce or (lambda v: v.mean(dim=dims))
        kl = reduce(normal_kl(true_mean, true_log_var, model_mean, model_log_var)) / math.log(2.0)
        nll = -reduce(discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var)) / math.log(2.0)
        return torch.where(t == 0, nll, kl)
