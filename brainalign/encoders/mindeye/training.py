"""The training loop of :class:`~brainalign.encoders.mindeye.BrainToEmbedding`.

Per-subject batches, the BiMixCo then SoftCLIP phases plus the regression MSE,
AdamW, the validation criterion per epoch, early stopping and the restoring of
the best epoch's weights; a mixin of the estimator.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from brainalign.encoders.mindeye.losses import bimixco_loss, draw_mixco, soft_clip_loss
from brainalign.encoders.mindeye.network import BrainToEmbeddingModule, LogitScale
from brainalign.metrics.identification import retrieval_top1

logger = logging.getLogger("brainalign")


class _BrainToEmbeddingTrainingMixin:
    """The training loop of :class:`~brainalign.encoders.mindeye.BrainToEmbedding`.

    Sets ``model_``, ``logit_scale_``, ``temperature_``, ``history_`` and ``best_epoch_``.
    """

    @staticmethod
    def _gather(
        batch: np.ndarray, data: tuple, device: torch.device
    ) -> tuple[np.ndarray, list[tuple[int, torch.Tensor]], torch.Tensor]:
        """Sort a batch by subject; return (sorted indices, per-subject input blocks, targets)."""
        per_subject, row_in_subject, sidx, Yt = data
        batch = batch[np.argsort(sidx[batch], kind="stable")]
        blocks = []
        for si in np.unique(sidx[batch]):
            rows = batch[sidx[batch] == si]
            x = per_subject[si][torch.from_numpy(row_in_subject[rows])]
            blocks.append((int(si), x.to(device)))
        return batch, blocks, Yt[torch.from_numpy(batch)].to(device)

    def _val_metrics(
        self, model: BrainToEmbeddingModule, data: tuple, val: np.ndarray, device: torch.device
    ) -> tuple[float, float, float]:
        model.eval()
        with torch.no_grad():
            _, blocks, y = self._gather(val, data, device)
            reg, proj = model([b for _, b in blocks], [s for s, _ in blocks])
            mse = float(F.mse_loss(reg, y))
            con = float(soft_clip_loss(proj, y, float(self.temperature)))
        r = retrieval_top1(proj.cpu().numpy(), y.cpu().numpy(), n_way=val.size, n_draws=1)
        return con + float(self.mse_weight) * mse, mse, 0.5 * (r["a_to_b"] + r["b_to_a"])

    def _train(
        self,
        model: BrainToEmbeddingModule,
        scale_mod: LogitScale,
        data: tuple,
        train: np.ndarray,
        val: np.ndarray,
        rng: np.random.Generator,
        device: torch.device,
    ) -> None:
        from tqdm.auto import tqdm

        decay, no_decay = [], []
        for name, p in model.named_parameters():
            (decay if name.endswith("weight") and p.ndim == 2 else no_decay).append(p)
        groups = [
            {"params": decay, "weight_decay": float(self.weight_decay)},
            {"params": no_decay + list(scale_mod.parameters()), "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=float(self.lr))
        sidx = data[2]
        n_batches = max(1, math.ceil(train.size / int(self.batch_size)))
        mse_weight = float(self.mse_weight)
        history: dict[str, list] = {
            k: []
            for k in ("epoch", "phase", "train_loss", "val_loss", "val_mse", "val_retrieval",
                      "temperature")
        }
        best_loss, best_epoch, best_state, since_best = math.inf, 0, None, 0
        bar = tqdm(
            range(1, int(self.epochs) + 1),
            desc="BrainToEmbedding",
            unit="epoch",
            disable=not self.verbose,
        )
        for epoch in bar:
            phase = "bimixco" if epoch <= self.n_mixco_epochs_ else "softclip"
            model.train()
            order = train[rng.permutation(train.size)]
            batches = [b for b in np.array_split(order, n_batches) if b.size >= 2]
            total, count = 0.0, 0
            for b in batches:
                b, blocks, y = self._gather(b, data, device)
                tau = scale_mod()
                if phase == "bimixco":
                    perm_np, betas_np = draw_mixco(sidx[b], rng)
                    perm = torch.from_numpy(perm_np).to(device)
                    betas = torch.from_numpy(betas_np).to(device)
                    xs, start = [], 0
                    for _, x in blocks:  # partners are in the same subject block
                        stop = start + x.shape[0]
                        lam = betas[start:stop, None]
                        xs.append(lam * x + (1 - lam) * x[perm[start:stop] - start])
                        start = stop
                    reg, proj = model(xs, [s for s, _ in blocks])
                    contrastive = bimixco_loss(proj, y, perm, betas, tau)
                    y_reg = betas[:, None] * y + (1 - betas[:, None]) * y[perm]
                else:
                    reg, proj = model([x for _, x in blocks], [s for s, _ in blocks])
                    contrastive = soft_clip_loss(proj, y, tau)
                    y_reg = y
                loss = contrastive + mse_weight * F.mse_loss(reg, y_reg)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scale_mod.learnable:
                    scale_mod.clamp_()
                total += float(loss.detach()) * b.size
                count += b.size
            train_loss = total / count
            if val.size:
                val_loss, val_mse, val_ret = self._val_metrics(model, data, val, device)
            else:
                val_loss = val_mse = val_ret = math.nan
            for k, v in (("epoch", epoch), ("phase", phase), ("train_loss", train_loss),
                         ("val_loss", val_loss), ("val_mse", val_mse),
                         ("val_retrieval", val_ret), ("temperature", scale_mod.temperature)):
                history[k].append(v)
            bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
            if not val.size:
                best_epoch = epoch
                continue
            if val_loss < best_loss:
                best_loss, best_epoch, since_best = val_loss, epoch, 0
                best_state = (
                    {k: v.detach().clone() for k, v in model.state_dict().items()},
                    {k: v.detach().clone() for k, v in scale_mod.state_dict().items()},
                )
            else:
                since_best += 1
                if self.patience is not None and since_best >= self.patience:
                    logger.info(
                        "BrainToEmbedding: early stop at epoch %d (best %d, val loss %.4f).",
                        epoch, best_epoch, best_loss,
                    )
                    break
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state[0])
            scale_mod.load_state_dict(best_state[1])
        model.eval()
        self.model_ = model
        self.logit_scale_ = scale_mod
        self.temperature_ = scale_mod.temperature
        self.history_ = history
        self.best_epoch_ = int(best_epoch)
