"""Du-IN's training stages, as a mixin of :class:`~brainalign.encoders.duin.DuINWordDecoder`.

The stratified validation split, the per-channel standardisation statistics,
the seeded mini-batches, stage 1 (VQ-VAE), stage 2 (masked code prediction),
stage 3 (the classifier, with early stopping) and the eval-mode passes that
compute code indices and logits batch by batch.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import _Packed
from .network import _DuINNet

#: Commitment-loss weight of the VQ-VAE (van den Oord et al., 2017).
COMMITMENT_BETA = 0.25

_HISTORY_KEYS = (
    "vq_recon_loss",
    "vq_codebook_loss",
    "vq_commit_loss",
    "vq_perplexity",
    "mask_loss",
    "mask_acc",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
)


class _DuINTraining:
    """The training stages of :class:`~brainalign.encoders.duin.DuINWordDecoder` (a mixin)."""

    @staticmethod
    def _split(
        y_idx: np.ndarray, val_fraction: float, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stratified split: ``round(val_fraction * n_c)`` (at least 1 if ``n_c >= 2``,
        at most ``n_c - 1``) trials of each class go to validation."""
        rng = np.random.default_rng(seed)
        val = []
        if val_fraction > 0:
            for c in np.unique(y_idx):
                members = np.flatnonzero(y_idx == c)
                if members.size < 2:
                    continue
                k = min(max(1, round(val_fraction * members.size)), members.size - 1)
                val.append(rng.permutation(members)[:k])
        val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
        train_idx = np.setdiff1d(np.arange(y_idx.size), val_idx)
        return train_idx, val_idx

    @staticmethod
    def _set_standardization(net: _DuINNet, packed: _Packed) -> None:
        for s, x in enumerate(packed.xs):
            if x is None:
                continue
            x64 = x.double()
            mean = x64.mean(dim=(0, 2))
            std = x64.std(dim=(0, 2), correction=0)
            std = torch.where(std > 1e-12 * (1 + mean.abs()), std, torch.ones_like(std))
            net.fusion[s].mean.copy_(mean.float()[:, None])
            net.fusion[s].std.copy_(std.float()[:, None])

    def _batches(
        self, idx: np.ndarray, batch_size: int, gen: torch.Generator | None
    ) -> list[np.ndarray]:
        if gen is not None:
            idx = idx[torch.randperm(idx.size, generator=gen).numpy()]
        return [idx[i : i + batch_size] for i in range(0, idx.size, batch_size)]

    def _progress(self, n: int, desc: str, verbose: bool):
        from tqdm.auto import tqdm

        return tqdm(range(n), desc=desc, unit="epoch", disable=not verbose, leave=False)

    # ---- stage 1 ------------------------------------------------------- #
    def _stage_vqvae(self, net, packed, train_idx, p, gen, history, device) -> None:
        net.eval()
        with torch.no_grad():  # initialise the codebook from random encoder outputs
            groups, _ = packed.batch(train_idx[: max(p["batch_size"], 1)], device)
            z = net.quantize_input(net.encode(groups)).reshape(-1, p["codebook_dim"])
            pick = torch.randint(z.shape[0], (p["codebook_size"],), generator=gen)
            noise = 0.01 * torch.randn(
                p["codebook_size"], p["codebook_dim"], generator=gen
            )
            net.codebook.copy_(z[pick.to(z.device)] + noise.to(z.device))
        params = (
            net.encoder_parameters()
            + list(net.vq_proj.parameters())
            + [net.codebook]
            + list(net.dec_in.parameters())
            + [net.dec_pos]
            + list(net.decoder.parameters())
            + list(net.recon.parameters())
        )
        opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
        K = p["codebook_size"]
        for _ in self._progress(
            p["pretrain_epochs"], "Du-IN stage 1 (VQ-VAE)", p["verbose"]
        ):
            net.train()
            sums = np.zeros(3)
            counts = torch.zeros(K, dtype=torch.float64)
            n_seen = 0
            for b in self._batches(train_idx, p["batch_size"], gen):
                groups, _ = packed.batch(b, device)
                z_e = net.quantize_input(net.encode(groups))
                z_q, idx = net.quantize(z_e)
                codebook_loss = F.mse_loss(z_q, z_e.detach())
                commit_loss = F.mse_loss(z_e, z_q.detach())
                z_st = z_e + (z_q - z_e).detach()
                recon = net.reconstruct(z_st, [(s, x.shape[0]) for s, x in groups])
                recon_loss = 0.0
                for (s, x), r in zip(groups, recon):
                    target = net.fusion[s].standardize(x)  # (b, C, N*P)
                    bsz, C, _ = target.shape
                    target = target.reshape(bsz, C, net.n_patches, net.patch_len)
                    target = target.permute(0, 2, 1, 3).reshape(
                        bsz, net.n_patches, C * net.patch_len
                    )
                    recon_loss = (
                        recon_loss
                        + F.mse_loss(r, target, reduction="sum") / r[0].numel()
                    )
                recon_loss = recon_loss / len(b)
                loss = recon_loss + codebook_loss + COMMITMENT_BETA * commit_loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sums += len(b) * np.array(
                    [recon_loss.item(), codebook_loss.item(), commit_loss.item()]
                )
                counts += torch.bincount(idx.reshape(-1).cpu(), minlength=K).double()
                n_seen += len(b)
            probs = counts / counts.sum()
            nz = probs[probs > 0]
            history["vq_recon_loss"].append(float(sums[0] / n_seen))
            history["vq_codebook_loss"].append(float(sums[1] / n_seen))
            history["vq_commit_loss"].append(float(sums[2] / n_seen))
            history["vq_perplexity"].append(float(torch.exp(-(nz * nz.log()).sum())))

    @staticmethod
    def _codes(net, packed, idx, batch_size, device) -> np.ndarray:
        """Code indices (len(idx), n_patches) from the VQ tokenizer in eval mode."""
        out = np.zeros((idx.size, net.n_patches), dtype=np.int64)
        pos = {int(g): k for k, g in enumerate(idx)}
        was_training = net.training
        net.eval()
        with torch.no_grad():
            for i in range(0, idx.size, batch_size):
                groups, order = packed.batch(idx[i : i + batch_size], device)
                _, codes = net.quantize(net.quantize_input(net.encode(groups)))
                out[[pos[int(g)] for g in order]] = codes.cpu().numpy()
        net.train(was_training)
        return out

    # ---- stage 2 ------------------------------------------------------- #
    def _stage_masked(
        self, net, packed, train_idx, codes, p, gen, history, device
    ) -> None:
        params = (
            net.encoder_parameters()
            + [net.mask_token]
            + list(net.code_head.parameters())
        )
        opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
        N = net.n_patches
        n_mask = min(N, max(1, round(p["mask_ratio"] * N)))
        codes_t = torch.from_numpy(codes)
        for _ in self._progress(
            p["pretrain_epochs"], "Du-IN stage 2 (masked codes)", p["verbose"]
        ):
            net.train()
            loss_sum, correct, total, n_seen = 0.0, 0, 0, 0
            for b in self._batches(train_idx, p["batch_size"], gen):
                groups, order = packed.batch(b, device)
                ranks = torch.rand(len(order), N, generator=gen).argsort(dim=1)
                mask = ranks < n_mask
                target = codes_t[torch.from_numpy(order)]
                mask, target = mask.to(device), target.to(device)
                logits = net.code_head(net.encode(groups, mask=mask))
                loss = F.cross_entropy(logits[mask], target[mask])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                loss_sum += loss.item() * len(b)
                n_seen += len(b)
                correct += int((logits[mask].argmax(-1) == target[mask]).sum())
                total += int(mask.sum())
            history["mask_loss"].append(loss_sum / n_seen)
            history["mask_acc"].append(correct / total)

    # ---- stage 3 ------------------------------------------------------- #
    def _stage_classify(
        self, net, packed, y_idx, train_idx, val_idx, p, gen, history, device
    ) -> int:
        params = net.encoder_parameters() + list(net.head.parameters())
        opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
        y_t = torch.from_numpy(y_idx)
        best: tuple[float, float] | None = None
        best_state: dict[str, torch.Tensor] | None = None
        best_epoch, best_epoch_kept, stale = 0, 0, 0
        bar = self._progress(p["epochs"], "Du-IN stage 3 (classifier)", p["verbose"])
        for epoch in bar:
            net.train()
            loss_sum, correct, n_seen = 0.0, 0, 0
            for b in self._batches(train_idx, p["batch_size"], gen):
                groups, order = packed.batch(b, device)
                target = y_t[torch.from_numpy(order)].to(device)
                logits = net(groups)
                loss = F.cross_entropy(logits, target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                loss_sum += loss.item() * len(b)
                correct += int((logits.argmax(-1) == target).sum())
                n_seen += len(b)
            history["train_loss"].append(loss_sum / n_seen)
            history["train_acc"].append(correct / n_seen)
            best_epoch = epoch
            if val_idx.size == 0:
                continue
            logits = self._logits(net, packed, val_idx, p["batch_size"], device)
            val_loss = float(F.cross_entropy(logits, y_t[torch.from_numpy(val_idx)]))
            val_acc = float((logits.argmax(-1).numpy() == y_idx[val_idx]).mean())
            history["val_loss"].append(val_loss)
            history["val_acc"].append(val_acc)
            if (
                best is None
                or val_acc > best[0]
                or (val_acc == best[0] and val_loss < best[1])
            ):
                best, stale = (val_acc, val_loss), 0
                best_state = copy.deepcopy(net.state_dict())
                best_epoch_kept = epoch
            else:
                stale += 1
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(val_acc=f"{val_acc:.3f}", best=f"{best[0]:.3f}")
            if stale >= p["patience"]:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
            best_epoch = best_epoch_kept
        return best_epoch

    @staticmethod
    def _logits(net, packed, idx, batch_size, device) -> torch.Tensor:
        """Eval-mode logits (len(idx), n_classes) on the CPU, in ``idx`` order."""
        was_training = net.training
        net.eval()
        out = None
        pos = {int(g): k for k, g in enumerate(idx)}
        with torch.no_grad():
            for i in range(0, idx.size, batch_size):
                groups, order = packed.batch(idx[i : i + batch_size], device)
                logits = net(groups).float().cpu()
                if out is None:
                    out = torch.empty(idx.size, logits.shape[1])
                out[torch.tensor([pos[int(g)] for g in order])] = logits
        net.train(was_training)
        return out
