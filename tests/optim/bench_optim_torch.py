#!/usr/bin/python3
"""PyTorch reference for tests/optim/bench_optim: the same bert-base
parameter shapes (110 M parameters), one torch.optim.AdamW step
(weight decay on all but biases/LayerNorm, as the Trainer groups them) and
clip_grad_norm_, with 1 and 2 threads, single-tensor (foreach=False, the CPU
default) and multi-tensor (foreach=True) implementations.

    /usr/bin/python3 tests/optim/bench_optim_torch.py [repeats]
"""
import sys
import time

import torch

V, H, L, I, P, T = 30522, 768, 12, 3072, 512, 2


def shapes():
    out = [((V, H), True), ((P, H), True), ((T, H), True), ((H,), False), ((H,), False)]
    for _ in range(L):
        for _ in range(3):
            out += [((H, H), True), ((H,), False)]
        out += [((H, H), True), ((H,), False), ((H,), False), ((H,), False),
                ((I, H), True), ((I,), False), ((H, I), True), ((H,), False),
                ((H,), False), ((H,), False)]
    out += [((H, H), True), ((H,), False),                       # pooler
            ((H, H), True), ((H,), False), ((H,), False), ((H,), False), ((V,), False)]  # MLM head
    return out


def best(repeats, fn):
    t = 1e30
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    spec = shapes()
    params = [torch.nn.Parameter(torch.rand(s) - 0.5) for s, _ in spec]
    for p in params:
        p.grad = (torch.rand(p.shape) - 0.5) * 1e-3
    n = sum(p.numel() for p in params)
    print(f"torch {torch.__version__}: {n} parameters, {repeats} repeats, best time")
    print(f"{'operation':<30} {'threads':>8} {'ms':>10} {'GB/s':>10}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for foreach in (False, True):
            decay = [p for p, (_, d) in zip(params, spec) if d]
            nodecay = [p for p, (_, d) in zip(params, spec) if not d]
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                     {"params": nodecay, "weight_decay": 0.0}],
                                    lr=1e-4, eps=1e-6, foreach=foreach)
            opt.step()  # allocate the state outside the timing
            t = best(repeats, opt.step)
            name = f"AdamW step (foreach={foreach})"
            print(f"{name:<30} {threads:>8} {1e3 * t:>10.1f} {28 * n / t / 1e9:>10.2f}")
            del opt
        t = best(repeats, lambda: torch.nn.utils.clip_grad_norm_(params, 1e9))
        print(f"{'clip_grad_norm_ (no clip)':<30} {threads:>8} {1e3 * t:>10.1f} {4 * n / t / 1e9:>10.2f}")


if __name__ == "__main__":
    main()
