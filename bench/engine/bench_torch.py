#!/usr/bin/python3
"""PyTorch reference for bench/engine/bench_engine.c: the same BERT MLM
training step (forward, backward, AdamW) and forward-only pass, same shapes,
same masked positions, dropout 0.1, 2 threads, built from torch.nn modules
(Debian's python3-torch; transformers is not needed).

    OMP_NUM_THREADS=2 /usr/bin/python3 bench/engine/bench_torch.py base|small [steps]
"""
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Layer(nn.Module):
    def __init__(s, H, NH, I, eps, p):
        super().__init__()
        s.NH, s.D = NH, H // NH
        s.q, s.k, s.v, s.o = (nn.Linear(H, H) for _ in range(4))
        s.ln1, s.ln2 = nn.LayerNorm(H, eps=eps), nn.LayerNorm(H, eps=eps)
        s.fi, s.fo = nn.Linear(H, I), nn.Linear(I, H)
        s.drop = nn.Dropout(p)

    def forward(s, x, madd):
        B, S, H = x.shape

        def heads(t):
            return t.view(B, S, s.NH, s.D).transpose(1, 2)

        q, k, v = heads(s.q(x)), heads(s.k(x)), heads(s.v(x))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(s.D) + madd, dim=-1)
        ctx = (s.drop(a) @ v).transpose(1, 2).reshape(B, S, H)
        h = s.ln1(s.drop(s.o(ctx)) + x)
        return s.ln2(s.drop(s.fo(F.gelu(s.fi(h)))) + h)


class BertMLM(nn.Module):
    def __init__(s, V, H, L, NH, I, P=512, eps=1e-12, p=0.1):
        super().__init__()
        s.word, s.pos, s.tt = nn.Embedding(V, H, padding_idx=0), nn.Embedding(P, H), nn.Embedding(2, H)
        s.ln = nn.LayerNorm(H, eps=eps)
        s.drop = nn.Dropout(p)
        s.layers = nn.ModuleList(Layer(H, NH, I, eps, p) for _ in range(L))
        s.pooler = nn.Linear(H, H)
        s.dense, s.mln = nn.Linear(H, H), nn.LayerNorm(H, eps=eps)
        s.bias = nn.Parameter(torch.zeros(V))
        # BERT's initialisation (as dapt_model_init_random): N(0, 0.02)
        # weights, zero biases, unit LayerNorm; keeps the loss in the same
        # range as dapt's (PyTorch's defaults start near 90).
        for mod in s.modules():
            if isinstance(mod, (nn.Linear, nn.Embedding)):
                nn.init.normal_(mod.weight, 0.0, 0.02)
            if isinstance(mod, nn.Linear):
                nn.init.zeros_(mod.bias)

    def forward(s, ids, labels):
        B, S = ids.shape
        x = s.word(ids) + s.pos(torch.arange(S)) + s.tt(torch.zeros_like(ids))
        x = s.drop(s.ln(x))
        madd = torch.zeros(B, 1, 1, S)
        for layer in s.layers:
            x = layer(x, madd)
        torch.tanh(s.pooler(x[:, 0]))
        sel = labels.view(-1) != -100  # MLM head on masked positions only
        t = s.mln(F.gelu(s.dense(x.view(-1, x.shape[-1])[sel])))
        logits = t @ s.word.weight.T + s.bias
        return F.cross_entropy(logits, labels.view(-1)[sel])


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "small"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    torch.set_num_threads(2)
    if which == "base":
        cfg, B = dict(H=768, L=12, NH=12, I=3072), 8
    else:
        cfg, B = dict(H=256, L=4, NH=4, I=1024), 32
    S, T = 128, B * 128
    torch.manual_seed(1)
    model = BertMLM(30522, **cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-6, weight_decay=0.01)
    ids = torch.empty(T, dtype=torch.long)
    labels = torch.full((T,), -100, dtype=torch.long)
    for t in range(T):  # the same rule as bench_engine.c
        h = ((t + 1) * 2654435761) % 2**32
        ids[t] = 1000 + h % 20000
        if h < 0.15 * 2**32:
            labels[t] = ids[t]
            ids[t] = 103
    ids, labels = ids.view(B, S), labels.view(B, S)
    masked = int((labels != -100).sum())
    model.train()
    tfs, tbs, tas, tss = [], [], [], []
    for s in range(-1, steps):
        t0 = time.perf_counter()
        loss = model(ids, labels)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if s >= 0:
            tfs.append(t1 - t0)
            tbs.append(t2 - t1)
            tas.append(t3 - t2)
            tss.append(t3 - t0)
    step, step_min = median(tss), min(tss)
    model.eval()
    with torch.no_grad():
        model(ids, labels)
        tfo = []
        for _ in range(steps):
            t0 = time.perf_counter()
            model(ids, labels)
            tfo.append(time.perf_counter() - t0)
        fwd, fwd_min = median(tfo), min(tfo)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("engine=pytorch-%s config=%s batch=%dx%d masked=%d threads=%d" % (torch.__version__, which, B, S,
                                                                         masked, torch.get_num_threads()))
    print("median: train_step_ms=%.1f forward_ms=%.1f backward_ms=%.1f adamw_ms=%.1f" % (
        1e3 * step, 1e3 * median(tfs), 1e3 * median(tbs), 1e3 * median(tas)))
    print("median: train_tokens_per_s=%.0f forward_only_ms=%.1f forward_tokens_per_s=%.0f" % (
        T / step, 1e3 * fwd, T / fwd))
    print("best:   train_step_ms=%.1f train_tokens_per_s=%.0f forward_only_ms=%.1f forward_tokens_per_s=%.0f" % (
        1e3 * step_min, T / step_min, 1e3 * fwd_min, T / fwd_min))
    print("loss_last=%.4f peak_rss_mb=%.0f" % (float(loss), rss))


if __name__ == "__main__":
    main()
