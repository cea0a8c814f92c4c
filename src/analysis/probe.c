/* Hidden states of a model on probe sequences, pooled per sequence and
 * layer, as distributed matrices: what `dapt analyze cka` compares. */
#include <stdlib.h>
#include <string.h>

#include "dapt/analysis.h"

/* Pools one chunk's hidden states [b, L, H] into rows of the column-grid
 * matrix (local rows row0 .. row0 + b). */
static void pool_rows(const float *h, const int32_t *att, int64_t b, int64_t L, int64_t H, dapt_pool pool,
                      dapt_dmat *M, int64_t row0)
{
    for (int64_t k = 0; k < b; k++) {
        double *dst = M->a + row0 + k; /* column-major: stride lld */
        const float *hk = h + k * L * H;
        if (pool == DAPT_POOL_FIRST) {
            for (int64_t j = 0; j < H; j++) dst[j * M->lld] = hk[j];
            continue;
        }
        int64_t used = 0;
        for (int64_t j = 0; j < H; j++) dst[j * M->lld] = 0;
        for (int64_t s = 0; s < L; s++) {
            if (att && !att[k * L + s]) continue;
            used++;
            for (int64_t j = 0; j < H; j++) dst[j * M->lld] += hk[s * H + j];
        }
        for (int64_t j = 0; j < H; j++) dst[j * M->lld] = used ? dst[j * M->lld] / (double)used : 0;
    }
}

/* This rank's rows of every layer, forward in chunks. */
static dapt_status run_rows(const dapt_model *m, dapt_sequences *seqs, int64_t first, int64_t rows, dapt_pool pool,
                            int64_t batch, dapt_dmat *cols)
{
    const int64_t L = dapt_sequences_seq_len(seqs), H = m->config.hidden, layers = m->config.layers;
    const int64_t chunk = batch < 1 ? 1 : batch;
    int32_t *ids = NULL, *att = NULL;
    int64_t *idx = NULL;
    dapt_workspace *ws = NULL;
    dapt_status st = DAPT_OK;
    if (rows == 0) return DAPT_OK;
    DAPT_TRY(dapt_alloc((void **)&ids, sizeof(int32_t) * (size_t)(chunk * L), "probe ids"));
    DAPT_TRY(dapt_alloc((void **)&att, sizeof(int32_t) * (size_t)(chunk * L), "probe attention"));
    DAPT_TRY(dapt_alloc((void **)&idx, sizeof(int64_t) * (size_t)chunk, "probe rows"));
    dapt_workspace_spec spec = {chunk, L, 0, 0, 0};
    DAPT_TRY(dapt_workspace_create(m, &spec, &ws));
    for (int64_t off = 0; off < rows; off += chunk) {
        int64_t b = rows - off < chunk ? rows - off : chunk;
        for (int64_t k = 0; k < b; k++) idx[k] = first + off + k;
        DAPT_TRY(dapt_sequences_read(seqs, DAPT_SPLIT_EVAL, idx, b, ids, att));
        dapt_batch bt = {0};
        bt.batch = b;
        bt.seq_len = L;
        bt.input_ids = ids;
        bt.attention_mask = att;
        bt.first_sample = (uint64_t)(first + off);
        dapt_run_opts ro = {0};
        DAPT_TRY(dapt_model_forward(m, ws, &bt, NULL, &ro));
        for (int64_t l = 0; l <= layers; l++) pool_rows(dapt_ws_hidden_state(ws, l), att, b, L, H, pool, &cols[l], off);
    }
cleanup:
    dapt_workspace_free(ws);
    free(ids);
    free(att);
    free(idx);
    return st;
}

dapt_status dapt_probe_hidden(const dapt_model *m, dapt_sequences *seqs, int64_t n, dapt_pool pool, int64_t batch,
                              const dapt_pgrid *g, int block, dapt_dmat *out)
{
    const int64_t layers = m->config.layers, H = m->config.hidden;
    for (int64_t l = 0; l <= layers; l++) memset(&out[l], 0, sizeof out[l]);
    if (n < 1 || n > dapt_sequences_count(seqs, DAPT_SPLIT_EVAL))
        return DAPT_ERROR(DAPT_ERR_ARG, "%lld probe sequences asked, the corpus has %lld held-out sequences", (long long)n,
                          (long long)dapt_sequences_count(seqs, DAPT_SPLIT_EVAL));
    dapt_pgrid col;
    dapt_dmat *cols = NULL;
    dapt_status st = dapt_pgrid_create(g->comm, g->size, 1, &col);
    if (st != DAPT_OK) return st;
    const int64_t q = (n + g->size - 1) / g->size;
    const int64_t first = q * g->rank, rows = n - first < 0 ? 0 : n - first < q ? n - first : q;
    DAPT_TRY(dapt_calloc((void **)&cols, (size_t)(layers + 1), sizeof *cols, "probe matrices"));
    for (int64_t l = 0; l <= layers; l++)
        DAPT_TRY(dapt_status_agree(g->comm, dapt_dmat_create(&col, n, H, (int)q, (int)H, &cols[l])));
    if (cols[0].locr != rows) DAPT_THROW(DAPT_ERR_INTERNAL, "probe rows %d, expected %lld", cols[0].locr, (long long)rows);
    DAPT_TRY(dapt_status_agree(g->comm, run_rows(m, seqs, first, rows, pool, batch, cols)));
    for (int64_t l = 0; l <= layers; l++) {
        DAPT_TRY(dapt_dmat_redistribute(&cols[l], g, block, block, &out[l]));
        dapt_dmat_free(&cols[l]);
    }
cleanup:
    if (cols)
        for (int64_t l = 0; l <= layers; l++) dapt_dmat_free(&cols[l]);
    free(cols);
    dapt_pgrid_free(&col);
    if (st != DAPT_OK)
        for (int64_t l = 0; l <= layers; l++) dapt_dmat_free(&out[l]);
    return st;
}
