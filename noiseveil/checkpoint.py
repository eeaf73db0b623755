"""Resumable training state, shared by every training loop (classifiers, RIC, later EtC)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass
class TrainingState:
    """Everything a run needs to continue exactly where it stopped."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator

    def save(self, path: Path | None, progress: dict[str, Any]) -> None:
        """Write atomically, so an interrupted save never leaves a corrupt checkpoint."""
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(
            {
                "model": self.model.state_dict(),
                "opt": self.optimizer.state_dict(),
                "sched": self.scheduler.state_dict(),
                "gen": self.generator.get_state(),
                "state": progress,
            },
            tmp,
        )
        os.replace(tmp, path)

    def resume(self, path: Path | None, fresh: dict[str, Any]) -> dict[str, Any]:
        """Load ``path`` if it exists and return its progress record; else return ``fresh``."""
        if path is None or not path.exists():
            return fresh
        saved = torch.load(path, weights_only=False)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["opt"])
        self.scheduler.load_state_dict(saved["sched"])
        self.generator.set_state(saved["gen"])
        return saved["state"]
