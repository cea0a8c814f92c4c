#!/usr/bin/python3
"""Step-time and checkpoint-time model of data-parallel dapt train at
cluster scale (docs/performance.md, "Parallel training and checkpoints").

    /usr/bin/python3 bench/parallel/scaling_model.py [--gflops R] [--adam-ns A] ...

Step:
    t_step = t_compute + t_adam + t_allreduce
    t_compute   = (G / p) * S * F_tok / R          F_tok: training FLOPs per token
    t_adam      = N * A                            replicated on every data rank
    t_allreduce = nb * 2 (p - 1) * alpha + 2 (p - 1) / p * 4 N / bw
                  (ring all-reduce per bucket; nb = ceil(4 N / bucket))
With --overlap (parallel.overlap_grads, given an interconnect that moves
data without the ranks' CPUs): the layers' and heads' buckets travel while
backward (2/3 of t_compute) runs; what stays exposed is the embeddings'
bucket, which backward completes last, plus whatever of the rest backward
was too short to hide:
    t_exposed = t_ar(4 N_emb) + max(0, t_ar(4 (N - N_emb)) - 2/3 t_compute)
With --zero (parallel.shard_optimizer, ZeRO stage 1): each rank updates
and keeps the moments of N / p parameters; each all-reduce bucket becomes
a reduce-scatter (overlapped the same way) and the update is followed by
an all-gather in the same buckets (exposed), the same bytes in total:
    t_adam = N / p * A
    t_rs   = nb (p - 1) alpha + (p - 1) / p * 4 N / bw
    t_ag   = nb (p - 1) alpha + (p - 1) / p * 4 N / bw
    Adam state per rank: 8 N / p bytes + a 4 N / p receive buffer (8 N replicated)
Checkpoint (params + two Adam moments, 12 N bytes, one shared file):
    t_write = 12 N / W_fs + n_dsets * t_coll + 12 N / crc_rate
    t_read  = p * 12 N / W_fs   (every rank reads the whole state today)
Speed-up at p ranks = t_step(1) / t_step(p) with the same global batch.
"""
import argparse
import math

V, P, S = 30522, 512, 128


def embedding_params(H):
    return V * H + P * H + 2 * H + 2 * H


def params(H, L, I):
    emb = V * H + P * H + 2 * H + 2 * H
    layer = 4 * H * H + 4 * H + 2 * H * I + I + H + 4 * H
    heads = H * H + H + H * H + H + 2 * H + V  # pooler, MLM dense + LN + bias
    return emb + L * layer + heads


def train_flops_per_token(H, L, I, mlm=0.15):
    # 3 x forward (dapt_model_forward_flops), per token
    fwd = 2 * (4 * H * H + 2 * H * I + 2 * S * H) * L + 2 * mlm * (H * H + H * V) + 2 * H * H / S
    return 3 * fwd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gflops", type=float, default=380.1,
                    help="per-rank fwd+bwd GFLOP/s (measured: bench_engine base, 2 cores, SkylakeX, 2026-12-07)")
    ap.add_argument("--adam-ns", type=float, default=0.42,
                    help="AdamW ns per parameter (measured: 46.5 ms for bert-base, same run)")
    ap.add_argument("--overlap", action="store_true", help="gradient buckets overlapped with backward")
    ap.add_argument("--zero", action="store_true", help="optimizer state sharded (ZeRO-1)")
    ap.add_argument("--batch", type=int, default=2048, help="global batch, sequences of 128")
    ap.add_argument("--alpha-us", type=float, default=3.0, help="per-message latency, microseconds")
    ap.add_argument("--bw-gbs", type=float, default=12.5, help="per-node link, GB/s (100 Gb/s)")
    ap.add_argument("--bucket-mib", type=float, default=25.0, help="parallel.bucket_mb")
    ap.add_argument("--fs-gbs", type=float, default=10.0, help="parallel file system, GB/s to one file")
    ap.add_argument("--coll-ms", type=float, default=1.0, help="per-dataset collective overhead at 512 ranks")
    ap.add_argument("--crc-gbs", type=float, default=3.3, help="zlib crc32 GB/s (measured)")
    ap.add_argument("--ranks", default="1,8,64,128,256,512,1024,2048")
    a = ap.parse_args()
    ranks = [int(x) for x in a.ranks.split(",")]
    for name, (H, L, I) in {"bert-base": (768, 12, 3072), "bert-large": (1024, 24, 4096)}.items():
        N = params(H, L, I)
        ftok = train_flops_per_token(H, L, I)
        grad = 4.0 * N
        nb = math.ceil(grad / (a.bucket_mib * 1048576))
        n_t = 5 + 16 * L + 2 + 5
        n_dsets = 3 * n_t

        def ar(p, nbytes, buckets):
            return buckets * 2 * (p - 1) * a.alpha_us * 1e-6 + 2 * (p - 1) / p * nbytes / (a.bw_gbs * 1e9)

        def half(p, nbytes, msgs):  # a reduce-scatter or an all-gather, ring
            return msgs * (p - 1) * a.alpha_us * 1e-6 + (p - 1) / p * nbytes / (a.bw_gbs * 1e9)

        def step(p):
            tc = a.batch / p * S * ftok / (a.gflops * 1e9)
            ta = N * a.adam_ns * 1e-9 / (p if a.zero else 1)
            if p == 1:
                return tc, ta, 0.0
            if a.zero:
                emb = 4.0 * embedding_params(H)
                t_rs = half(p, grad, nb)
                if a.overlap:  # the embeddings' reduce-scatter is exposed, the rest behind backward
                    t_rs = (half(p, emb, math.ceil(emb / (a.bucket_mib * 1048576)))
                            + max(0.0, half(p, grad - emb, L + 1) - 2.0 / 3.0 * tc))
                return tc, ta, t_rs + half(p, grad, nb)
            if not a.overlap:
                return tc, ta, ar(p, grad, nb)
            emb = 4.0 * embedding_params(H)
            rest = grad - emb
            t_emb = ar(p, emb, math.ceil(emb / (a.bucket_mib * 1048576)))
            t_rest = ar(p, rest, L + 1)  # one bucket per layer and one for the heads
            return tc, ta, t_emb + max(0.0, t_rest - 2.0 / 3.0 * tc)

        t1 = sum(step(1))
        print(f"## {name}: {N / 1e6:.1f} M parameters, {ftok / 1e6:.0f} MFLOP per token (train), "
              f"gradients {grad / 1e6:.0f} MB in {nb} buckets, checkpoint {12 * N / 1e9:.2f} GB in {n_dsets} datasets")
        if a.zero:
            print(f"Adam state per rank: {8 * N / 1e9:.2f} GB replicated; sharded "
                  + ", ".join(f"{(12 * N / p) / 1e6:.0f} MB at {p}" for p in ranks if p > 1 and a.batch % p == 0)
                  + " (moments + receive buffer)")
        print(f"{'ranks':>6} {'compute_s':>10} {'adamw_s':>8} {'allreduce_s':>11} {'step_s':>8} {'comm_share':>10} "
              f"{'speedup':>8} {'efficiency':>10}")
        for p in ranks:
            if a.batch % p:
                continue
            tc, ta, tr = step(p)
            t = tc + ta + tr
            print(f"{p:>6} {tc:>10.3f} {ta:>8.3f} {tr:>11.3f} {t:>8.3f} {100 * tr / t:>9.1f}% {t1 / t:>8.0f} "
                  f"{100 * t1 / t / p:>9.0f}%")
        p = 512
        w = 12 * N / (a.fs_gbs * 1e9) + n_dsets * a.coll_ms * 1e-3 + 12 * N / (a.crc_gbs * 1e9)
        r = p * 12 * N / (a.fs_gbs * 1e9)
        r1 = 12 * N / (a.fs_gbs * 1e9) + 2 * 12 * N / (a.bw_gbs * 1e9)
        print(f"checkpoint on {p} ranks: write {w:.2f} s (data {12 * N / (a.fs_gbs * 1e9):.2f} + collectives "
              f"{n_dsets * a.coll_ms * 1e-3:.2f} + crc {12 * N / (a.crc_gbs * 1e9):.2f}); read {r:.0f} s as today "
              f"(every rank reads all), {r1:.2f} s if one rank read it and broadcast it")
        print()


if __name__ == "__main__":
    main()
