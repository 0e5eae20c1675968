"""Online performance predictor: a small MLP on architecture encodings (torch, no mmengine)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Predictor"]


class Predictor:
    """Predicts a path's mIoU from its one-hot encoding; refitted on all observations.

    Args:
        dim: Encoding length.
        hidden: Hidden units.
        steps: Adam steps per :meth:`fit`.
        max_obs: Most recent observations kept.
        seed: Seed of initialisation and training.
    """

    def __init__(
        self, dim: int, hidden: int = 64, steps: int = 200, max_obs: int = 4096, seed: int = 0
    ) -> None:
        self.dim, self.steps, self.max_obs, self.seed = dim, steps, max_obs, seed
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        for p in self.net.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        self.x = np.zeros((0, dim), np.float32)
        self.y = np.zeros(0, np.float32)
        self.mean, self.std = 0.0, 1.0

    def add(self, encodings: np.ndarray, targets: np.ndarray) -> None:
        self.x = np.concatenate([self.x, np.asarray(encodings, np.float32)])[-self.max_obs :]
        self.y = np.concatenate([self.y, np.asarray(targets, np.float32)])[-self.max_obs :]

    @property
    def ready(self) -> bool:
        return len(self.y) >= 8

    def fit(self) -> float:
        """Refits on the kept observations; returns the final training MSE (standardised)."""
        if not self.ready:
            return float("nan")
        self.mean, self.std = float(self.y.mean()), float(self.y.std() + 1e-6)
        x = torch.from_numpy(self.x)
        y = torch.from_numpy((self.y - self.mean) / self.std)[:, None]
        opt = torch.optim.Adam(self.net.parameters(), lr=3e-3, weight_decay=1e-4)
        loss = torch.tensor(0.0)
        for _ in range(self.steps):
            loss = nn.functional.mse_loss(self.net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(loss.detach())

    @torch.no_grad()
    def predict(self, encodings: np.ndarray) -> np.ndarray:
        out = self.net(torch.as_tensor(np.asarray(encodings, np.float32)))[:, 0].numpy()
        return out * self.std + self.mean

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "x": self.x.tolist(),
            "y": self.y.tolist(),
            "mean": self.mean,
            "std": self.std,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.x = np.asarray(state["x"], np.float32).reshape(-1, self.dim)
        self.y = np.asarray(state["y"], np.float32)
        self.mean, self.std = state["mean"], state["std"]
