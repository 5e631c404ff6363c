"""Training-step throughput, peak memory, parameters and FLOPs of the LWTGPF encoders beside timm's Swin.

    .venv/bin/python bench/bench_models.py                              # tiny @128x64 and Swin-S @384x128
    .venv/bin/python bench/bench_models.py --shapes small --batch 32 --iters 3
    .venv/bin/python bench/bench_models.py --threads 1 --iters 5        # steadiest on a busy CPU

For each shape three rows are measured in the same run, each in its own subprocess (so a CPU peak RSS
belongs to one model):
  lwtgpf   our LWTGPF model (LewinViT trunk + two last-stage branches + 6 BN necks), camera embedding on
  lewinvit the LewinViT backbone alone (one last stage, no necks): the same network shape as the anchor
  timm     the anchor: timm's SwinTransformer of the same shape (swin_small_patch4_window7_224 for
           Swin-S) built with img_size = the input size, no classifier
LWTGPF runs its last stage twice: at the tiny shape that costs more than padding-aware attention saves
(more FLOPs than the anchor), at Swin-S 384x128 it needs fewer (the anchor pads before its qkv).
--threads 1 gives the steadiest CPU comparison on a shared machine.
Columns: forward+backward images/s (mean over --iters timed steps after --warmup), peak memory of the
step (CUDA: max_memory_allocated; CPU: the worker's peak RSS minus its RSS before the first step),
parameters, forward GFLOPs per image (torch.utils.flop_counter, batch 1). On CUDA the step runs under
bf16 autocast. CPU figures depend on what else runs on the machine.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from lwtgpf.models import LEWINVIT_SHAPES, LWTGPF, LewinViT

# name: (LewinViT shape, input (H, W), timm anchor variant)
SHAPES = {
    "tiny": ("lewinvit_tiny", (128, 64), "swin_tiny_patch4_window7_224"),
    "small": ("lewinvit_small", (384, 128), "swin_small_patch4_window7_224"),
}
NUM_CAMERAS = 6


def build(shape: str, row: str) -> torch.nn.Module:
    name, size, variant = SHAPES[shape]
    spec = LEWINVIT_SHAPES[name]
    if row == "lwtgpf":
        return LWTGPF(LewinViT(spec, num_cameras=NUM_CAMERAS, drop_path=0.1))
    if row == "lewinvit":
        return LewinViT(spec, num_cameras=NUM_CAMERAS, drop_path=0.1)
    return timm.create_model(variant, pretrained=False, num_classes=0, img_size=size, embed_dim=spec.embed_dim,
                             depths=spec.depths, num_heads=spec.num_heads, drop_path_rate=0.1)


def step_loss(model: torch.nn.Module, images: torch.Tensor, cams: torch.Tensor) -> torch.Tensor:
    if isinstance(model, LWTGPF):
        return model(images, cams).stacked().pow(2).mean()
    if isinstance(model, LewinViT):
        return model(images, cams).pow(2).mean()
    return model(images).pow(2).mean()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(shape: str, row: str, batch: int, iters: int, warmup: int, device: str) -> dict:
    """One row, run inside a worker process."""
    torch.manual_seed(0)
    model = build(shape, row).to(device).train()
    size = SHAPES[shape][1]
    params = sum(p.numel() for p in model.parameters())
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        step_loss(model, torch.randn(1, 3, *size, device=device), torch.zeros(1, dtype=torch.long, device=device))
    gflops = counter.get_total_flops() / 1e9
    model.train()
    images = torch.randn(batch, 3, *size, device=device)
    cams = torch.randint(0, NUM_CAMERAS, (batch,), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    before = rss_mb()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for i in range(warmup + iters):
        start = time.perf_counter()
        with autocast:
            loss = step_loss(model, images, cams)
        loss.backward()
        model.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device == "cuda" else rss_mb() - before
    return {"shape": shape, "row": row, "size": f"{size[0]}x{size[1]}", "params_m": params / 1e6,
            "gflops": gflops, "img_s": batch * len(times) / sum(times), "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="tiny,small", help=f"comma list of {list(SHAPES)}")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=2, help="timed steps (Swin-S on a 2-core CPU: ~1 min each)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads per worker (default: torch's choice)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        shape, row = args.worker.split(":")
        print(json.dumps(measure(shape, row, args.batch, args.iters, args.warmup, args.device)))
        return

    print(f"device {args.device} ({torch.get_num_threads()} threads), batch {args.batch}, "
          f"{args.iters} timed step(s) after {args.warmup} warm-up, bf16 autocast: {args.device == 'cuda'}")
    header = f"{'shape':6} {'model':8} {'input':8} {'params (M)':>10} {'GFLOPs/img':>10} {'fwd+bwd img/s':>14} {'peak MB':>9}"
    print(header + "\n" + "-" * len(header))
    for shape in args.shapes.split(","):
        if shape not in SHAPES:
            raise SystemExit(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
        for row in ("lwtgpf", "lewinvit", "timm"):
            cmd = [sys.executable, __file__, "--worker", f"{shape}:{row}", "--batch", str(args.batch),
                   "--iters", str(args.iters), "--warmup", str(args.warmup), "--device", args.device]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{shape}/{row} failed:\n{out.stderr[-2000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['shape']:6} {r['row']:8} {r['size']:8} {r['params_m']:10.2f} {r['gflops']:10.2f} "
                  f"{r['img_s']:14.2f} {r['peak_mb']:9.0f}")


if __name__ == "__main__":
    main()
