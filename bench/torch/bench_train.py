"""The PyTorch-eager peer of `fuse3d bench train`: the twin network (models.py), the same step
(zero grads, forward, cumulative-link loss, backward, clip to norm 1, AdamW, cutpoint ascension),
the same seeds, input and threads. Prints `sec/step X` (median after warm-up) and the peak RSS.

Example: bench_train.py --model efficientnet3d --size 64 --batch 2 --steps 10 --threads 2
"""
import argparse
import contextlib
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python", "fuse3d"))
from models import cumulative_link_loss, make  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="efficientnet3d")
    ap.add_argument("--variant")
    ap.add_argument("--width", type=float)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.manual_seed(0)
    net = make(a.model, a.variant, a.size, a.width).to(device)
    if a.channels_last:
        net = net.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01)
    torch.manual_seed(1)
    x = torch.randn(a.batch, 3, a.size, a.size, a.size, device=device)
    if a.channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    labels = (torch.rand(a.batch, 25, device=device) * 3).long()
    net.train()
    times, loss = [], 0.0
    for i in range(a.warmup + a.steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        cast = torch.autocast(device.type, dtype=torch.bfloat16) if a.bf16 else contextlib.nullcontext()
        with cast:
            probs = net(x)
        value = cumulative_link_loss(probs, labels)
        value.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        net.link.ascend(0.0)
        loss = value.item()
        if i >= a.warmup:
            times.append(time.perf_counter() - start)
    print(f"model {a.model} size {a.size} batch {a.batch} threads {torch.get_num_threads()} device {device}")
    print(f"sec/step {statistics.median(times):.4f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")
    print(f"loss {loss:.4f}")


if __name__ == "__main__":
    main()
