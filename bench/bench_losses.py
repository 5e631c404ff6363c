"""GP-O2CAP loss + memory update: vectorised lwtgpf code vs the public code's per-sample loops.

Prints a table (ms per iteration, peak extra memory where CUDA) at the reference size:
F = 6 features, B = 32 (8 proxies x 4 crops), D = 768, P proxies over C cameras.
Run: .venv/bin/python bench/bench_losses.py [--proxies 2000] [--device cpu]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from lwtgpf.config import LossConfig
from lwtgpf.losses import gp_o2cap_loss
from lwtgpf.memory import CameraProxyMemory


def naive_loss(features, proxy_ids, memory, cfg):
    """Per-sample loops in the style of LWTGPF-2025 mb.py (offline) + O2CAP (online), batch mean."""
    bank, cluster, camera = memory.features, memory.cluster_of_proxy, memory.camera_of_proxy
    num_features, batch = bank.shape[0], features.shape[0]
    scores = torch.einsum("bfd,fpd->fbp", features, bank)
    logits = scores / cfg.temperature
    cameras = torch.unique(camera)
    per_feature = []
    for k in range(num_features):
        total = 0
        for i in range(batch):
            y = int(proxy_ids[i])
            pos = torch.nonzero(cluster == cluster[y]).flatten()
            rank = scores[k, i].detach().clone()
            rank[pos] = 1e4
            sel = torch.argsort(rank)[-cfg.hard_negatives - len(pos):]
            target = torch.zeros(len(sel), dtype=logits.dtype, device=logits.device)
            target[-len(pos):] = 1.0 / len(pos)
            total = total - (F.log_softmax(logits[k, i, sel], 0) * target).sum()
            a = cfg.online_balance * scores[k, i].detach() + (1 - cfg.online_balance) * (bank[k, y] @ bank[k].T)
            tops = torch.stack([torch.nonzero(camera == c).flatten()[a[camera == c].argmax()] for c in cameras])
            pos = tops[torch.argsort(a[tops])[-cfg.online_positives:]]
            a[pos] = 1e4
            sel = torch.argsort(a)[-cfg.hard_negatives - len(pos):]
            target = torch.zeros(len(sel), dtype=logits.dtype, device=logits.device)
            target[-len(pos):] = 1.0 / len(pos)
            total = total - (F.log_softmax(logits[k, i, sel], 0) * target).sum()
        per_feature.append(total / batch)
    return per_feature[0] + cfg.part_weight * torch.stack(per_feature[1:]).mean()


def naive_update(memory, features, proxy_ids):
    for i, y in enumerate(proxy_ids.tolist()):
        row = memory.momentum * memory.features[:, y] + (1 - memory.momentum) * features[i]
        memory.features[:, y] = row / row.norm(dim=-1, keepdim=True)


def timed(fn, device, repeats):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    return (time.perf_counter() - start) / repeats * 1e3, peak


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxies", type=int, default=2000)
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    num_features, batch, dim, num_proxies = 6, 32, 768, args.proxies
    bank = F.normalize(torch.randn(num_features, num_proxies, dim, generator=g), dim=-1)
    clusters = torch.arange(num_proxies) // 3
    cameras = torch.randint(0, args.cameras, (num_proxies,), generator=g)
    memory = CameraProxyMemory(bank.to(device), clusters, cameras.to(device), momentum=0.2)
    proxy_ids = torch.randperm(num_proxies, generator=g)[:8].repeat_interleave(4).to(device)
    features = F.normalize(torch.randn(batch, num_features, dim, generator=g), dim=-1).to(device)
    cfg = LossConfig()

    def vector_step():
        f = features.clone().requires_grad_()
        loss, _ = gp_o2cap_loss(f, proxy_ids, memory, cfg)
        loss.backward()
        memory.clone().update(features, proxy_ids)

    def naive_step():
        f = features.clone().requires_grad_()
        naive_loss(f, proxy_ids, memory, cfg).backward()
        naive_update(memory.clone(), features, proxy_ids)

    ref = naive_loss(features, proxy_ids, memory, cfg)
    mine, _ = gp_o2cap_loss(features, proxy_ids, memory, cfg)
    rows = [("per-sample loops (public code style)", *timed(naive_step, device, args.repeats)),
            ("vectorised (lwtgpf)", *timed(vector_step, device, args.repeats))]
    print(f"device={device} F={num_features} B={batch} D={dim} P={num_proxies} C={args.cameras} "
          f"|loss diff|={abs(float(ref) - float(mine)):.2e}")
    print(f"{'implementation':40s} {'ms/iter':>10s} {'peak MiB':>10s} {'speed-up':>9s}")
    for name, ms, peak in rows:
        print(f"{name:40s} {ms:10.1f} {peak:10.1f} {rows[0][1] / ms:8.1f}x")


if __name__ == "__main__":
    main()
