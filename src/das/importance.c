/* Unit importance: accumulation over batches, reduction over ranks, and the
 * per-layer normalisation of DGA/DAS. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/das.h"

const char *dapt_unit_kind_name(dapt_unit_kind kind)
{
    static const char *const names[DAPT_UNIT_KINDS] = {"head", "intermediate", "output"};
    return kind >= 0 && kind < DAPT_UNIT_KINDS ? names[kind] : "unknown";
}

static size_t kind_count(const dapt_importance *imp, int k) { return (size_t)(imp->layers * imp->units[k]); }

dapt_status dapt_importance_create(const dapt_model_config *mc, dapt_importance_mode mode, dapt_importance *imp)
{
    memset(imp, 0, sizeof *imp);
    if (mode != DAPT_IMPORTANCE_SIGNED && mode != DAPT_IMPORTANCE_ABSOLUTE)
        return DAPT_ERROR(DAPT_ERR_ARG, "importance: unknown accumulation mode %d", (int)mode);
    if (mc->layers <= 0 || mc->heads <= 0 || mc->intermediate <= 0 || mc->hidden <= 0)
        return DAPT_ERROR(DAPT_ERR_ARG, "importance: model sizes must be positive");
    imp->mode = mode;
    imp->layers = mc->layers;
    imp->units[DAPT_UNIT_HEAD] = mc->heads;
    imp->units[DAPT_UNIT_INTERMEDIATE] = mc->intermediate;
    imp->units[DAPT_UNIT_OUTPUT] = mc->hidden;
    dapt_status st = DAPT_OK;
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        DAPT_TRY(dapt_calloc((void **)&imp->sum[k], kind_count(imp, k), sizeof(double), "importance sums"));
        DAPT_TRY(dapt_calloc((void **)&imp->batch[k], kind_count(imp, k), sizeof(float), "importance batch"));
    }
    return DAPT_OK;
cleanup:
    dapt_importance_free(imp);
    return st;
}

void dapt_importance_free(dapt_importance *imp)
{
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        free(imp->sum[k]);
        free(imp->batch[k]);
        imp->sum[k] = NULL;
        imp->batch[k] = NULL;
    }
}

dapt_unit_mask_grads dapt_importance_batch_grads(dapt_importance *imp)
{
    dapt_unit_mask_grads g = {imp->batch[DAPT_UNIT_HEAD], imp->batch[DAPT_UNIT_INTERMEDIATE],
                              imp->batch[DAPT_UNIT_OUTPUT]};
    return g;
}

void dapt_importance_zero_batch(dapt_importance *imp)
{
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) memset(imp->batch[k], 0, kind_count(imp, k) * sizeof(float));
}

dapt_status dapt_importance_add_batch(dapt_importance *imp, double local_tokens, MPI_Comm comm)
{
    /* Sum the batch over ranks first: |sum| is not the sum of |parts|, and
     * the global batch is what the layout must not change. */
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        size_t n = kind_count(imp, k);
        if (n > (size_t)INT32_MAX) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "importance: %zu units is too many", n);
        DAPT_CHECK(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, imp->batch[k], (int)n, MPI_FLOAT, MPI_SUM, comm)));
    }
    double tokens = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&local_tokens, &tokens, 1, MPI_DOUBLE, MPI_SUM, comm)));
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        size_t n = kind_count(imp, k);
        double *sum = imp->sum[k];
        const float *b = imp->batch[k];
        if (imp->mode == DAPT_IMPORTANCE_ABSOLUTE)
            for (size_t i = 0; i < n; i++) sum[i] += fabs((double)b[i]);
        else
            for (size_t i = 0; i < n; i++) sum[i] += b[i];
    }
    imp->tokens += tokens;
    imp->batches++;
    dapt_importance_zero_batch(imp);
    return DAPT_OK;
}

dapt_status dapt_importance_raw(const dapt_importance *imp, dapt_unit_kind kind, float *out)
{
    if (kind < 0 || kind >= DAPT_UNIT_KINDS) return DAPT_ERROR(DAPT_ERR_ARG, "importance: bad unit kind");
    if (!(imp->tokens > 0)) return DAPT_ERROR(DAPT_ERR_ARG, "importance: no tokens accumulated");
    size_t n = kind_count(imp, kind);
    for (size_t i = 0; i < n; i++) out[i] = (float)(imp->sum[kind][i] / imp->tokens);
    return DAPT_OK;
}

const char *dapt_norm_kind_name(dapt_norm_kind k) { return k == DAPT_NORM_RANK ? "rank" : "tanh_z"; }

static void normalize_tanh_z(const float *x, int64_t units, float *y)
{
    double mean = 0, var = 0;
    for (int64_t i = 0; i < units; i++) mean += x[i];
    mean /= (double)units;
    for (int64_t i = 0; i < units; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    double sd = units > 1 ? sqrt(var / (double)(units - 1)) : 0.0;
    for (int64_t i = 0; i < units; i++) y[i] = sd > 0 ? (float)fabs(tanh(((double)x[i] - mean) / sd)) : 0.0f;
}

/* Ranks by insertion into a sorted index list: layers hold at most a few
 * thousand units, and this runs once per importance source. */
static void normalize_rank(const float *x, int64_t units, float *y)
{
    if (units == 1) {
        y[0] = 1.0f;
        return;
    }
    double *r = malloc((size_t)units * sizeof *r);
    if (!r) { /* out of memory: every unit equally important */
        for (int64_t i = 0; i < units; i++) y[i] = 0.5f;
        return;
    }
    for (int64_t i = 0; i < units; i++) {
        int64_t below = 0, equal = 0;
        for (int64_t j = 0; j < units; j++) {
            below += x[j] < x[i];
            equal += x[j] == x[i];
        }
        r[i] = (double)below + 0.5 * (double)(equal - 1); /* ties averaged */
    }
    for (int64_t i = 0; i < units; i++) y[i] = (float)(r[i] / (double)(units - 1));
    free(r);
}

void dapt_importance_normalize(const float *in, int64_t layers, int64_t units, dapt_norm_kind kind, float *out)
{
    for (int64_t l = 0; l < layers; l++) {
        if (kind == DAPT_NORM_RANK) normalize_rank(in + l * units, units, out + l * units);
        else normalize_tanh_z(in + l * units, units, out + l * units);
    }
}

void dapt_importance_combine_max(float *acc, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (src[i] > acc[i]) acc[i] = src[i];
}
