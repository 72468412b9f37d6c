"""Residual Log-likelihood Estimation (RLE; Li et al., "Human Pose Regression with Residual
Log-likelihood Estimation", ICCV 2021), as the official RLE code and MMPose ``RLELoss`` compute it.

For a normalised residual ``x̄ = (pred - target) / sigma`` (per keypoint, 2-D) the loss is the
negative log-likelihood of the target under ``P(x) = Q(x̄) G_phi(x̄) / sigma``:

    L = log(sigma) - log G_phi(x̄)                    (flow term, ``residual=False``)
      + log(2 sigma) + |x̄|                  (``residual=True``, q = Laplace: -log Q(x̄) + log sigma)
      (or log(sqrt(2 pi) sigma) + x̄^2 / 2 for q = Gaussian)

``G_phi`` is a RealNVP flow on R^2 (3 coupling pairs, masks ``[[0,1],[1,0]] * 3``, scale and
translation nets ``Linear(2,64)-LeakyReLU-Linear(64,64)-LeakyReLU-Linear(64,2)`` (+Tanh for the scale
net), standard 2-D normal prior). As in the official code ``log G_phi`` (one value per keypoint) is
subtracted from *each* of the two coordinates' terms, the per-keypoint-and-coordinate loss is
multiplied by the keypoint's target weight, and ``size_average`` divides the sum by the batch size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

Q_DISTRIBUTIONS = ("laplace", "gaussian")


def _coupling_net(scale: bool, hidden: int = 64) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Linear(2, hidden),
        nn.LeakyReLU(),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(),
        nn.Linear(hidden, 2),
    ]
    if scale:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class RealNVP(nn.Module):
    """2-D RealNVP density ``G_phi`` (Dinh et al. 2017) as used by RLE.

    ``log_prob(x)`` maps ``x`` back to the prior through the inverse couplings, last first:
    ``z = m*z + (1-m) * (z - t(m*z)) * exp(-s(m*z))``, accumulating ``-sum(s)`` as log-determinant,
    then adds the standard normal log density of ``z``. Official init: xavier_uniform(gain=0.01)
    on every Linear weight (biases left at PyTorch's default).
    """

    def __init__(self, hidden: int = 64, num_pairs: int = 3):
        super().__init__()
        mask = torch.tensor([[0.0, 1.0], [1.0, 0.0]] * num_pairs)
        self.register_buffer("mask", mask, persistent=False)
        self.s = nn.ModuleList([_coupling_net(True, hidden) for _ in range(len(mask))])
        self.t = nn.ModuleList([_coupling_net(False, hidden) for _ in range(len(mask))])
        self.init_weights()

    def init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=0.01)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (N,2) -> (z (N,2), log|det dz/dx| (N,))``."""
        if x.dim() != 2 or x.shape[1] != 2:
            raise ValueError(f"RealNVP expects (N, 2) inputs, got {tuple(x.shape)}")
        z = x
        log_det = x.new_zeros(x.shape[0])
        for i in reversed(range(len(self.t))):
            m = self.mask[i].to(x.dtype)
            z_masked = m * z
            s = self.s[i](z_masked) * (1 - m)
            t = self.t[i](z_masked) * (1 - m)
            z = (1 - m) * (z - t) * torch.exp(-s) + z_masked
            log_det = log_det - s.sum(dim=1)
        return z, log_det

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log G_phi(x)`` for ``x (N,2)`` -> ``(N,)``."""
        z, log_det = self.inverse(x)
        prior = -0.5 * (z**2).sum(dim=1) - math.log(2 * math.pi)
        return prior + log_det


class RLELoss(nn.Module):
    """RLE loss for any regression head.

    Args:
        residual: add the residual term ``-log Q(x̄) + log sigma`` (RLE's residual log-likelihood).
        q_distribution: ``'laplace'`` (official default) or ``'gaussian'``.
        size_average: divide the summed loss by the batch size.
        use_target_weight: multiply each keypoint's loss by its target weight.
        loss_weight: final multiplier.

    ``forward(pred (B,K,2), sigma (B,K,2) > 0, target (B,K,2), target_weight (B,K) or None)``:
    coordinates normalised to the input size, ``sigma`` in the same units (e.g. a sigmoid output).
    """

    def __init__(
        self,
        residual: bool = True,
        q_distribution: str = "laplace",
        size_average: bool = True,
        use_target_weight: bool = True,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if q_distribution not in Q_DISTRIBUTIONS:
            raise ValueError(
                f"RLELoss: q_distribution must be one of {Q_DISTRIBUTIONS}, got {q_distribution!r}"
            )
        self.residual = residual
        self.q_distribution = q_distribution
        self.size_average = size_average
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight
        self.flow = RealNVP()

    def forward(
        self,
        pred: torch.Tensor,
        sigma: torch.Tensor,
        target: torch.Tensor,
        target_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if pred.dim() != 3 or pred.shape[-1] != 2:
            raise ValueError(f"RLELoss: pred must be (B,K,2), got {tuple(pred.shape)}")
        if sigma.shape != pred.shape or target.shape != pred.shape:
            raise ValueError(
                f"RLELoss: pred {tuple(pred.shape)}, sigma {tuple(sigma.shape)} and target "
                f"{tuple(target.shape)} must have the same shape"
            )
        b, k, _ = pred.shape
        error = (pred - target) / (sigma + 1e-9)
        log_phi = self.flow.log_prob(error.reshape(-1, 2)).reshape(b, k, 1)
        loss = torch.log(sigma) - log_phi
        if self.residual:
            if self.q_distribution == "laplace":
                loss = loss + torch.log(sigma * 2) + error.abs()
            else:
                loss = loss + torch.log(sigma * math.sqrt(2 * math.pi)) + 0.5 * error**2
        if self.use_target_weight and target_weight is not None:
            if target_weight.shape != (b, k):
                raise ValueError(
                    f"RLELoss: target_weight must be (B,K)={(b, k)}, got {tuple(target_weight.shape)}"
                )
            loss = loss * target_weight.to(loss.dtype).unsqueeze(-1)
        total = loss.sum()
        if self.size_average:
            total = total / b
        return total * self.loss_weight
