"""The Lightning wrapper: optimiser and schedule as in the paper, the loss, and dev entity F1.

Dev F1 needs decoding (overlap resolution), which lives in `inference/`; the training
entry points pass it in as `dev_counts(batch, scores) -> (true positives, predicted, gold)`,
so counts from every device are summed before F1 is computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytorch_lightning as pl
import torch

from models.losses import ener_loss, span_cross_entropy

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig


class SpanNERModule(pl.LightningModule):
    _dev: torch.Tensor  # dev (true positives, predicted, gold), the buffer registered in __init__

    def __init__(self, model, config, dev_counts):
        super().__init__()
        self.model, self.config, self.dev_counts = model, config, dev_counts
        self.register_buffer("_dev", torch.zeros(3, dtype=torch.float64), persistent=False)
        self.sentences_seen = 0  # training sentences stepped through (this process)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        scores = self.model(batch)
        c = self.config
        if c.is_ener:
            return ener_loss(scores, batch["labels"], batch["span_mask"], self.current_epoch, c.ener_loss_options())
        return span_cross_entropy(scores, batch["labels"], batch["span_mask"], c.neg_span_weight)

    def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.sentences_seen += len(batch["index"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["index"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], _: int) -> None:
        self._dev += torch.tensor(self.dev_counts(batch, self.model(batch)), dtype=torch.float64, device=self._dev.device)

    def on_validation_epoch_end(self) -> None:
        tp, n_pred, n_gold = self.trainer.strategy.reduce(self._dev, reduce_op="sum").tolist()
        self._dev.zero_()
        f1 = 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0
        self.log("dev_f1", f1, prog_bar=True, sync_dist=False)

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        c = self.config
        no_decay = ("bias", "LayerNorm.weight", "norm.weight")
        params = list(self.model.named_parameters())
        groups = [{"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": c.weight_decay},
                  {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0}]
        # fused: one kernel over all parameters, ~10x faster per step on CPU than the per-tensor
        # loop (0.05 s instead of 0.5 s for MiniLM's 22M parameters), the same update.
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for _, p in params)
        optimizer = torch.optim.AdamW(groups, lr=c.learning_rate, betas=(0.9, 0.98), eps=c.adam_epsilon, fused=fused)
        total = max(1, self.trainer.estimated_stepping_batches)
        warmup = int(c.warmup_proportion * total)
        # Linear warm-up, then linear decay to zero (transformers' get_linear_schedule_with_warmup).
        def lr_lambda(step: int) -> float:
            return step / max(1, warmup) if step < warmup else max(0.0, (total - step) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
