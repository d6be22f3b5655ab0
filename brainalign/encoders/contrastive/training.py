"""The training loop of :class:`~brainalign.encoders.contrastive.ContrastiveEncoder`.

AdamW over shuffled batches, a validation pass per epoch (loss and top-10
identification), early stopping on the validation loss and the restoring of
the best epoch's weights; a mixin of the estimator.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from brainalign.encoders.contrastive.brain_module import BrainModule
from brainalign.encoders.contrastive.loss import ClipLoss
from brainalign.metrics.identification import identification_topk

logger = logging.getLogger("brainalign")


class _ContrastiveTrainingMixin:
    """The training loop of :class:`~brainalign.encoders.contrastive.ContrastiveEncoder`.

    Sets ``model_``, ``loss_``, ``history_`` and ``best_epoch_``.
    """

    def _run_batches(
        self,
        model: BrainModule,
        loss_fn: ClipLoss,
        batches: list[np.ndarray],
        tensors: tuple[torch.Tensor, ...],
        device: torch.device,
        optimizer: torch.optim.Optimizer | None,
        outputs: list[np.ndarray] | None = None,
    ) -> float:
        Xp, Yt, sidx, tid = tensors
        total, count = 0.0, 0
        for b in batches:
            bt = torch.from_numpy(b)
            x = Xp[bt].to(device)
            y = Yt[bt].to(device)
            s = sidx[bt].to(device)
            t = tid[bt].to(device)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x, s), y, t)
                loss.backward()
                optimizer.step()
                loss_fn.clamp_()
            else:
                with torch.no_grad():
                    out = model(x, s)
                    loss = loss_fn(out, y, t)
                if outputs is not None:
                    outputs.append(out.cpu().numpy().astype(np.float64))
            total += float(loss.detach()) * len(b)
            count += len(b)
        return total / count

    def _train(
        self,
        model: BrainModule,
        loss_fn: ClipLoss,
        Xp: torch.Tensor,
        Yt: torch.Tensor,
        sidx: torch.Tensor,
        tid: torch.Tensor,
        train: np.ndarray,
        val: np.ndarray,
        rng: np.random.Generator,
        device: torch.device,
        n_epochs: int | None = None,
    ) -> None:
        from tqdm.auto import tqdm

        optimizer = torch.optim.AdamW(
            [
                {
                    "params": list(model.parameters()),
                    "weight_decay": float(self.weight_decay),
                },
                {"params": list(loss_fn.parameters()), "weight_decay": 0.0},
            ],
            lr=float(self.lr),
        )
        bs = int(self.batch_size)
        n_val_batches = max(1, math.ceil(val.size / bs))
        val_batches = (
            [b.astype(np.int64) for b in np.array_split(val, n_val_batches)]
            if val.size
            else []
        )
        n_train_batches = max(1, math.ceil(train.size / bs))
        tensors = (Xp, Yt, sidx, tid)
        history: dict[str, list] = {
            "epoch": [],
            "train_loss": [],
            "val_loss": [],
            "val_top10": [],
            "temperature": [],
        }
        val_targets = Yt[torch.from_numpy(val.astype(np.int64))].numpy().astype(np.float64) if val.size else None
        best_loss, best_epoch, best_state, since_best = math.inf, 0, None, 0
        bar = tqdm(
            range(1, int(self.epochs if n_epochs is None else n_epochs) + 1),
            desc="ContrastiveEncoder" if n_epochs is None else "ContrastiveEncoder (refit)",
            unit="epoch",
            disable=not self.verbose,
        )
        for epoch in bar:
            model.train()
            loss_fn.train()
            order = train[rng.permutation(train.size)].astype(np.int64)
            batches = [b for b in np.array_split(order, n_train_batches) if b.size >= 2]
            train_loss = self._run_batches(
                model, loss_fn, batches, tensors, device, optimizer
            )
            model.eval()
            loss_fn.eval()
            outputs: list[np.ndarray] = []
            val_loss = (
                self._run_batches(model, loss_fn, val_batches, tensors, device, None, outputs)
                if val_batches
                else math.nan
            )
            # Recorded, not monitored: top-10 of the validation windows among their unique segments (as at test
            # time). On small validation sets it is noisier than the loss and stops training too early.
            val_top10 = (
                identification_topk(np.concatenate(outputs), val_targets, k=10)["accuracy"][10]
                if val_batches and len(np.unique(val_targets, axis=0)) >= 2
                else math.nan
            )
            history["epoch"].append(epoch)
            history["train_loss"].append(train_loss)
            history["val_loss"].append(val_loss)
            history["val_top10"].append(val_top10)
            history["temperature"].append(loss_fn.temperature)
            bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
            if not val_batches:
                best_epoch = epoch
                continue
            if val_loss < best_loss:
                best_loss, best_epoch, since_best = val_loss, epoch, 0
                best_state = {
                    k: v.detach().clone()
                    for k, v in [
                        *model.state_dict().items(),
                        *(("loss." + k, v) for k, v in loss_fn.state_dict().items()),
                    ]
                }
            else:
                since_best += 1
                if self.patience is not None and since_best >= self.patience:
                    logger.info(
                        "ContrastiveEncoder: early stop at epoch %d (best %d, val loss %.4f).",
                        epoch,
                        best_epoch,
                        best_loss,
                    )
                    break
        bar.close()
        if best_state is not None:
            model.load_state_dict(
                {k: v for k, v in best_state.items() if not k.startswith("loss.")}
            )
            loss_fn.load_state_dict(
                {k[5:]: v for k, v in best_state.items() if k.startswith("loss.")}
            )
        model.eval()
        loss_fn.eval()
        self.model_ = model
        self.loss_ = loss_fn
        self.history_ = history
        self.best_epoch_ = int(best_epoch)
