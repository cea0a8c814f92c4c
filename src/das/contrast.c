/* Mean pooling and the DAS contrastive (InfoNCE) loss over a global batch
 * split across data-parallel ranks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/das.h"

void dapt_mean_pool_forward(const float *hidden, const int32_t *mask, int64_t batch, int64_t seq_len,
                            int64_t dim, float *out)
{
    for (int64_t b = 0; b < batch; b++) {
        double count = 0;
        float *o = out + b * dim;
        memset(o, 0, sizeof(float) * (size_t)dim);
        for (int64_t s = 0; s < seq_len; s++) {
            if (mask && !mask[b * seq_len + s]) continue;
            const float *h = hidden + (b * seq_len + s) * dim;
            for (int64_t k = 0; k < dim; k++) o[k] += h[k];
            count += 1;
        }
        if (count > 0)
            for (int64_t k = 0; k < dim; k++) o[k] = (float)(o[k] / count);
    }
}

void dapt_mean_pool_backward(const float *d_out, const int32_t *mask, int64_t batch, int64_t seq_len,
                             int64_t dim, float *d_hidden)
{
    for (int64_t b = 0; b < batch; b++) {
        double count = 0;
        for (int64_t s = 0; s < seq_len; s++) count += !mask || mask[b * seq_len + s];
        if (count == 0) continue;
        const float *g = d_out + b * dim;
        for (int64_t s = 0; s < seq_len; s++) {
            if (mask && !mask[b * seq_len + s]) continue;
            float *dh = d_hidden + (b * seq_len + s) * dim;
            for (int64_t k = 0; k < dim; k++) dh[k] += (float)(g[k] / count);
        }
    }
}

/* Unit vectors of rows (norms clamped at 1e-8, as torch's cosine_similarity
 * clamps the product of norms) and the norms themselves. */
static void normalize_rows(const float *z, int64_t n, int64_t dim, double *u, double *norm)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t k = 0; k < dim; k++) s += (double)z[i * dim + k] * z[i * dim + k];
        norm[i] = fmax(sqrt(s), 1e-8);
        for (int64_t k = 0; k < dim; k++) u[i * dim + k] = z[i * dim + k] / norm[i];
    }
}

/* Gradient through u = z / |z|: dz = (du - u (u . du)) / |z|. */
static void normalize_backward(const double *u, const double *norm, const double *du, int64_t n, int64_t dim,
                               float *dz)
{
    for (int64_t i = 0; i < n; i++) {
        double dot = 0;
        for (int64_t k = 0; k < dim; k++) dot += u[i * dim + k] * du[i * dim + k];
        for (int64_t k = 0; k < dim; k++)
            dz[i * dim + k] = (float)((du[i * dim + k] - u[i * dim + k] * dot) / norm[i]);
    }
}

dapt_status dapt_contrastive_loss(const float *z1, const float *z2, const float *z3, int64_t n, int64_t dim,
                                  double tau, MPI_Comm comm, double *loss, float *d_z1, float *d_z2,
                                  float *d_z3)
{
    return dapt_contrastive_loss_ex(z1, z2, z3, n, dim, tau, 0, comm, loss, d_z1, d_z2, d_z3);
}

dapt_status dapt_contrastive_loss_ex(const float *z1, const float *z2, const float *z3, int64_t n, int64_t dim,
                                     double tau, int skip_own_z3, MPI_Comm comm, double *loss, float *d_z1,
                                     float *d_z2, float *d_z3)
{
    if (!(tau > 0)) return DAPT_ERROR(DAPT_ERR_ARG, "contrastive loss: temperature %g must be positive", tau);
    if (n < 0 || dim <= 0) return DAPT_ERROR(DAPT_ERR_ARG, "contrastive loss: bad sizes n=%lld dim=%lld",
                                             (long long)n, (long long)dim);
    int size = 1, rank = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    dapt_status st = DAPT_OK;
    int *rows = NULL, *counts = NULL, *displs = NULL;
    float *g2 = NULL, *g3 = NULL;
    double *u = NULL, *v = NULL, *w = NULL, *n1 = NULL, *n2 = NULL, *n3 = NULL;
    double *du = NULL, *dv = NULL, *dw = NULL, *dv_mine = NULL, *dw_mine = NULL, *logits = NULL;
    int64_t N = 0, first = 0;

    /* Who holds which rows of the global batch. */
    DAPT_TRY(dapt_alloc((void **)&rows, sizeof(int) * (size_t)size, "row counts"));
    DAPT_TRY(dapt_alloc((void **)&counts, sizeof(int) * (size_t)size, "gather counts"));
    DAPT_TRY(dapt_alloc((void **)&displs, sizeof(int) * (size_t)size, "gather offsets"));
    if (n > INT32_MAX / dim) DAPT_THROW(DAPT_ERR_UNSUPPORTED, "contrastive loss: %lld rows is too many", (long long)n);
    int mine = (int)n;
    DAPT_TRY(DAPT_MPI(MPI_Allgather(&mine, 1, MPI_INT, rows, 1, MPI_INT, comm)));
    for (int r = 0; r < size; r++) {
        if (r == rank) first = N;
        if (N * dim + (int64_t)rows[r] * dim > INT32_MAX)
            DAPT_THROW(DAPT_ERR_UNSUPPORTED, "contrastive loss: global batch too large to gather");
        counts[r] = (int)(rows[r] * dim);
        displs[r] = (int)(N * dim);
        N += rows[r];
    }
    if (N == 0) DAPT_THROW(DAPT_ERR_ARG, "contrastive loss: empty global batch");

    size_t local = (size_t)(n * dim), global = (size_t)(N * dim);
    DAPT_TRY(dapt_alloc((void **)&g2, sizeof(float) * global, "gathered z2"));
    DAPT_TRY(dapt_alloc((void **)&g3, sizeof(float) * global, "gathered z3"));
    DAPT_TRY(DAPT_MPI(MPI_Allgatherv(z2, counts[rank], MPI_FLOAT, g2, counts, displs, MPI_FLOAT, comm)));
    DAPT_TRY(DAPT_MPI(MPI_Allgatherv(z3, counts[rank], MPI_FLOAT, g3, counts, displs, MPI_FLOAT, comm)));

    DAPT_TRY(dapt_alloc((void **)&u, sizeof(double) * (local ? local : 1), "anchors"));
    DAPT_TRY(dapt_alloc((void **)&v, sizeof(double) * global, "positives"));
    DAPT_TRY(dapt_alloc((void **)&w, sizeof(double) * global, "general views"));
    DAPT_TRY(dapt_alloc((void **)&n1, sizeof(double) * (size_t)(n ? n : 1), "norms"));
    DAPT_TRY(dapt_alloc((void **)&n2, sizeof(double) * (size_t)N, "norms"));
    DAPT_TRY(dapt_alloc((void **)&n3, sizeof(double) * (size_t)N, "norms"));
    normalize_rows(z1, n, dim, u, n1);
    normalize_rows(g2, N, dim, v, n2);
    normalize_rows(g3, N, dim, w, n3);

    DAPT_TRY(dapt_calloc((void **)&du, local ? local : 1, sizeof(double), "anchor gradients"));
    DAPT_TRY(dapt_calloc((void **)&dv, global, sizeof(double), "positive gradients"));
    DAPT_TRY(dapt_calloc((void **)&dw, global, sizeof(double), "general-view gradients"));
    DAPT_TRY(dapt_alloc((void **)&logits, sizeof(double) * 2 * (size_t)N, "logits"));

    /* Row i's loss: logsumexp over [u_i.v_j, u_i.w_j]/tau minus u_i.v_i/tau.
     * Its gradient w.r.t. logit j is softmax_j - [j is the positive]. */
    double local_loss = 0, scale = 1.0 / ((double)N * tau);
    for (int64_t i = 0; i < n; i++) {
        const double *ui = u + i * dim;
        double top = -INFINITY;
        const int64_t pos = first + i;
        for (int64_t j = 0; j < 2 * N; j++) {
            const double *x = j < N ? v + j * dim : w + (j - N) * dim;
            double dot = 0;
            for (int64_t k = 0; k < dim; k++) dot += ui[k] * x[k];
            /* A left-out candidate has probability 0 and gets no gradient. */
            logits[j] = skip_own_z3 && j == N + pos ? -INFINITY : dot / tau;
            if (logits[j] > top) top = logits[j];
        }
        double z = 0;
        for (int64_t j = 0; j < 2 * N; j++) z += exp(logits[j] - top);
        local_loss += top + log(z) - logits[pos];
        for (int64_t j = 0; j < 2 * N; j++) {
            double p = exp(logits[j] - top) / z - (j == pos ? 1.0 : 0.0);
            double c = p * scale;
            double *x_grad = j < N ? dv + j * dim : dw + (j - N) * dim;
            const double *x = j < N ? v + j * dim : w + (j - N) * dim;
            for (int64_t k = 0; k < dim; k++) {
                du[i * dim + k] += c * x[k];
                x_grad[k] += c * ui[k];
            }
        }
    }
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(&local_loss, loss, 1, MPI_DOUBLE, MPI_SUM, comm)));
    *loss /= (double)N;

    /* Every rank's anchors touched every row of z2 and z3: sum those
     * contributions and hand each rank its own rows. */
    DAPT_TRY(dapt_alloc((void **)&dv_mine, sizeof(double) * (local ? local : 1), "own z2 gradients"));
    DAPT_TRY(dapt_alloc((void **)&dw_mine, sizeof(double) * (local ? local : 1), "own z3 gradients"));
    DAPT_TRY(DAPT_MPI(MPI_Reduce_scatter(dv, dv_mine, counts, MPI_DOUBLE, MPI_SUM, comm)));
    DAPT_TRY(DAPT_MPI(MPI_Reduce_scatter(dw, dw_mine, counts, MPI_DOUBLE, MPI_SUM, comm)));
    if (d_z1) normalize_backward(u, n1, du, n, dim, d_z1);
    if (d_z2) normalize_backward(v + first * dim, n2 + first, dv_mine, n, dim, d_z2);
    if (d_z3) normalize_backward(w + first * dim, n3 + first, dw_mine, n, dim, d_z3);

cleanup:
    free(rows);
    free(counts);
    free(displs);
    free(g2);
    free(g3);
    free(u);
    free(v);
    free(w);
    free(n1);
    free(n2);
    free(n3);
    free(du);
    free(dv);
    free(dw);
    free(dv_mine);
    free(dw_mine);
    free(logits);
    return st;
}
