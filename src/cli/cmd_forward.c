/* dapt forward --model M.h5 --input IN.h5 --output OUT.h5: one forward pass
 * (and, with labels, the backward pass to the unit masks) over a batch from
 * a file, every intermediate written out.  The batch's rows are split over
 * the ranks; each rank writes its rows of every output (hyperslabs of one
 * file), so the result does not depend on the number of ranks beyond
 * float summation order in the reduced mask gradients. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/cli.h"
#include "dapt/h5io.h"
#include "dapt/log.h"
#include "dapt/model.h"
#include "dapt/modelfile.h"
#include "dapt/platform.h"

static void usage(void)
{
    printf("usage: dapt forward --model M.h5 --input IN.h5 --output OUT.h5 [--train-mode]\n"
           "                    [--batch-size N] [--force]\n\n"
           "IN.h5 holds input_ids [B, S] and optionally attention_mask [B, S] (1 = attend;\n"
           "default all ones), token_type_ids [B, S], head_mask [layers, heads],\n"
           "intermediate_mask [layers, intermediate], output_mask [layers, hidden] and\n"
           "labels: [B, S] MLM labels (-100 = not scored) or [B] class labels (float\n"
           "targets, NaN = not scored, for a one-output regression head: MSE loss).\n"
           "OUT.h5 receives hidden_states [layers + 1, B, S, hidden] (embedding output,\n"
           "then every layer), last_hidden_state [B, S, hidden], pooler_output [B, hidden]\n"
           "(models with a pooler), mlm_logits [B, S, vocab] or logits [B, labels], and\n"
           "with labels: loss and head_mask_grad, intermediate_mask_grad,\n"
           "output_mask_grad (d loss / d unit mask).  Eval mode (no dropout) unless\n"
           "--train-mode (dropout keyed by run.seed, step 0 and the sample index).\n"
           "Rows are split over the ranks and processed --batch-size rows at a time\n"
           "(default 16).  docs/formats.md describes both files.\n\n");
    dapt_cli_print_common_help();
}

typedef struct fwd_args {
    const char *model, *input, *output;
    int train, force;
    int64_t chunk;
} fwd_args;

/* The batch as this rank holds it: rows [row0, row0 + rows) of B. */
typedef struct fwd_input {
    int64_t B, S, row0, rows;
    int32_t *ids, *am, *tt, *labels;
    float *values;  /* [B] regression targets (a one-output head), instead of labels */
    int mlm_labels; /* labels are [B, S] */
    float *head, *inter, *out;
} fwd_input;

static void free_input(fwd_input *in)
{
    free(in->ids);
    free(in->am);
    free(in->tt);
    free(in->labels);
    free(in->values);
    free(in->head);
    free(in->inter);
    free(in->out);
    memset(in, 0, sizeof *in);
}

/* Reads this rank's rows of a [B, S] (or [B]) integer dataset. */
static dapt_status read_rows(const dapt_h5file *f, const char *name, const fwd_input *in, int ndim, int32_t **out)
{
    int nd = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    dapt_h5_type t;
    DAPT_CHECK(dapt_h5_info(f, name, &nd, dims, &t));
    if (nd != ndim || dims[0] != in->B || (ndim == 2 && dims[1] != in->S))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s must have shape [%lld%s], like input_ids", f->path, name,
                          (long long)in->B, ndim == 2 ? ", S" : "");
    if (t == DAPT_H5_F32 || t == DAPT_H5_F64)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s must hold integers, not %s", f->path, name, dapt_h5_type_name(t));
    size_t n = (size_t)in->rows * (ndim == 2 ? (size_t)in->S : 1);
    DAPT_CHECK(dapt_alloc((void **)out, n * sizeof **out, name));
    const int64_t start[2] = {in->row0, 0}, count[2] = {in->rows, in->S};
    return dapt_h5_read(f, name, DAPT_H5_I32, ndim, start, count, *out);
}

/* This rank's rows of [B] float regression targets. */
static dapt_status read_values(const dapt_h5file *f, const fwd_input *in, float **out)
{
    int nd = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    DAPT_CHECK(dapt_h5_info(f, "labels", &nd, dims, NULL));
    if (nd != 1 || dims[0] != in->B)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: labels must have shape [%lld], like input_ids", f->path, (long long)in->B);
    DAPT_CHECK(dapt_alloc((void **)out, (size_t)(in->rows ? in->rows : 1) * sizeof **out, "regression labels"));
    const int64_t start[1] = {in->row0}, count[1] = {in->rows};
    return dapt_h5_read(f, "labels", DAPT_H5_F32, 1, start, count, *out);
}

static dapt_status read_mask(const dapt_h5file *f, const char *name, int64_t rows, int64_t cols, float **out)
{
    DAPT_CHECK(dapt_alloc((void **)out, (size_t)(rows * cols) * sizeof **out, name));
    for (int64_t i = 0; i < rows * cols; i++) (*out)[i] = 1.0f;
    if (!dapt_h5_exists(f, name)) return DAPT_OK;
    int nd = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    DAPT_CHECK(dapt_h5_info(f, name, &nd, dims, NULL));
    if (nd != 2 || dims[0] != rows || dims[1] != cols)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s must have shape [%lld, %lld]", f->path, name, (long long)rows,
                          (long long)cols);
    const int64_t start[2] = {0, 0}, count[2] = {rows, cols};
    return dapt_h5_read(f, name, DAPT_H5_F32, 2, start, count, *out);
}

static dapt_status read_input(const char *path, const dapt_model_config *mc, fwd_input *in)
{
    memset(in, 0, sizeof *in);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(MPI_COMM_WORLD, path, &f));
    dapt_status st = DAPT_OK;
    int nd = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    DAPT_TRY(dapt_h5_info(&f, "input_ids", &nd, dims, NULL));
    if (nd != 2 || dims[0] < 1 || dims[1] < 1)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: input_ids must be a non-empty [batch, seq_len] array", path);
    in->B = dims[0];
    in->S = dims[1];
    /* RoBERTa positions run from pad_token_id + 1. */
    int64_t max_len = mc->max_position - (mc->arch == DAPT_ARCH_ROBERTA ? mc->pad_token_id + 1 : 0);
    if (in->S > max_len)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: sequences of %lld tokens are longer than the model's %lld positions", path,
                   (long long)in->S, (long long)max_len);
    int rank = 0, size = 1;
    DAPT_TRY(DAPT_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank)));
    DAPT_TRY(DAPT_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size)));
    int64_t base = in->B / size, extra = in->B % size;
    in->row0 = rank * base + (rank < extra ? rank : extra);
    in->rows = base + (rank < extra ? 1 : 0);
    {
        /* A corrupted header's dimensions must not become a terabyte request:
         * the rank's inputs and hidden states of every layer, against RAM. */
        const double need = (double)in->rows * (double)in->S *
                            (3.0 * sizeof(int32_t) + (double)(mc->layers + 1) * (double)mc->hidden * sizeof(float));
        const double ram = dapt_physical_memory();
        if (ram > 0 && need > ram) {
            char a[32], b[32];
            dapt_format_bytes(need, a, sizeof a);
            dapt_format_bytes(ram, b, sizeof b);
            DAPT_THROW(DAPT_ERR_NOMEM, "%s: input_ids of shape [%lld, %lld] need %s per rank for the forward pass, more "
                       "than this node's %s of memory (a damaged file, or run on more ranks)", path, (long long)in->B,
                       (long long)in->S, a, b);
        }
    }
    DAPT_TRY(read_rows(&f, "input_ids", in, 2, &in->ids));
    if (dapt_h5_exists(&f, "attention_mask")) DAPT_TRY(read_rows(&f, "attention_mask", in, 2, &in->am));
    if (dapt_h5_exists(&f, "token_type_ids")) DAPT_TRY(read_rows(&f, "token_type_ids", in, 2, &in->tt));
    if (dapt_h5_exists(&f, "labels")) {
        DAPT_TRY(dapt_h5_info(&f, "labels", &nd, dims, NULL));
        in->mlm_labels = nd == 2;
        if (in->mlm_labels && !mc->has_mlm_head)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: labels are [batch, seq_len] (MLM) but the model has no MLM head", path);
        if (!in->mlm_labels && mc->num_labels <= 0)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: labels are [batch] (classes) but the model has no classifier", path);
        if (!in->mlm_labels && mc->num_labels == 1) DAPT_TRY(read_values(&f, in, &in->values));
        else DAPT_TRY(read_rows(&f, "labels", in, in->mlm_labels ? 2 : 1, &in->labels));
    }
    DAPT_TRY(read_mask(&f, "head_mask", mc->layers, mc->heads, &in->head));
    DAPT_TRY(read_mask(&f, "intermediate_mask", mc->layers, mc->intermediate, &in->inter));
    DAPT_TRY(read_mask(&f, "output_mask", mc->layers, mc->hidden, &in->out));
    if (in->am)
        for (int64_t i = 0; i < in->rows * in->S; i++)
            if (in->am[i] != 0 && in->am[i] != 1)
                DAPT_THROW(DAPT_ERR_FORMAT, "%s: attention_mask[%lld][%lld] = %d is neither 0 nor 1", path,
                           (long long)(in->row0 + i / in->S), (long long)(i % in->S), in->am[i]);
cleanup:
    dapt_h5_close(&f);
    st = dapt_status_agree(MPI_COMM_WORLD, st);
    if (st != DAPT_OK) free_input(in);
    return st;
}

/* Creates every output dataset (collective, same on all ranks). */
static dapt_status create_outputs(dapt_h5file *f, const dapt_model_config *mc, const fwd_input *in)
{
    const int64_t H = mc->hidden, L = mc->layers;
    const int64_t hs[4] = {L + 1, in->B, in->S, H}, last[3] = {in->B, in->S, H}, pool[2] = {in->B, H};
    DAPT_CHECK(dapt_h5_create_dataset(f, "hidden_states", DAPT_H5_F32, 4, hs));
    DAPT_CHECK(dapt_h5_create_dataset(f, "last_hidden_state", DAPT_H5_F32, 3, last));
    if (mc->has_pooler) DAPT_CHECK(dapt_h5_create_dataset(f, "pooler_output", DAPT_H5_F32, 2, pool));
    if (mc->has_mlm_head) {
        const int64_t d[3] = {in->B, in->S, mc->vocab_size};
        DAPT_CHECK(dapt_h5_create_dataset(f, "mlm_logits", DAPT_H5_F32, 3, d));
    }
    if (mc->num_labels > 0) {
        const int64_t d[2] = {in->B, mc->num_labels};
        DAPT_CHECK(dapt_h5_create_dataset(f, "logits", DAPT_H5_F32, 2, d));
    }
    return DAPT_OK;
}

/* Writes rows [r0, r0 + n) of every output from the workspace (n may be 0). */
static dapt_status write_rows(dapt_h5file *f, const dapt_model_config *mc, const fwd_input *in,
                              const dapt_workspace *ws, int64_t r0, int64_t n)
{
    const int64_t H = mc->hidden, S = in->S;
    for (int64_t i = 0; i <= mc->layers; i++) {
        const int64_t start[4] = {i, r0, 0, 0}, count[4] = {1, n, S, H};
        DAPT_CHECK(dapt_h5_write_slab(f, "hidden_states", DAPT_H5_F32, start, count,
                                      n ? dapt_ws_hidden_state(ws, i) : NULL));
    }
    const int64_t s3[3] = {r0, 0, 0}, c3[3] = {n, S, H};
    DAPT_CHECK(dapt_h5_write_slab(f, "last_hidden_state", DAPT_H5_F32, s3, c3, n ? dapt_ws_last_hidden(ws) : NULL));
    const int64_t s2[2] = {r0, 0}, c2[2] = {n, H};
    if (mc->has_pooler)
        DAPT_CHECK(dapt_h5_write_slab(f, "pooler_output", DAPT_H5_F32, s2, c2, n ? dapt_ws_pooler(ws) : NULL));
    if (mc->has_mlm_head) {
        const float *logits = NULL;
        if (n) {
            int64_t rows = 0;
            const int64_t *pos = NULL;
            logits = dapt_ws_mlm_logits(ws, &rows, &pos);
            /* With mlm_all_positions every position is a row, in order. */
            if (!logits || rows != n * S || (rows > 0 && (pos[0] != 0 || pos[rows - 1] != rows - 1)))
                return DAPT_ERROR(DAPT_ERR_INTERNAL, "forward: MLM logits are not one row per position");
        }
        const int64_t c[3] = {n, S, mc->vocab_size};
        DAPT_CHECK(dapt_h5_write_slab(f, "mlm_logits", DAPT_H5_F32, s3, c, logits));
    }
    if (mc->num_labels > 0) {
        const int64_t c[2] = {n, mc->num_labels};
        DAPT_CHECK(dapt_h5_write_slab(f, "logits", DAPT_H5_F32, s2, c, n ? dapt_ws_class_logits(ws) : NULL));
    }
    return DAPT_OK;
}

static dapt_status allreduce_f(float *buf, int64_t n)
{
    return DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
}

/* Every rank takes part; every failure is agreed before it returns. */
static dapt_status run(dapt_cli *cli, void *ctx)
{
    const fwd_args *a = ctx;
    if (!a->model || !a->input || !a->output)
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt forward: --model, --input and --output are required");
    dapt_model m;
    memset(&m, 0, sizeof m);
    fwd_input in;
    memset(&in, 0, sizeof in);
    dapt_workspace *ws = NULL;
    dapt_h5file out;
    memset(&out, 0, sizeof out);
    out.id = H5I_INVALID_HID;
    float *g_head = NULL, *g_inter = NULL, *g_out = NULL;
    dapt_status st = DAPT_OK;

    /* Model: every rank reads it (collectively) and holds it whole. */
    dapt_h5file mf;
    dapt_model_config mc;
    DAPT_CHECK(dapt_h5_open(MPI_COMM_WORLD, a->model, &mf));
    st = dapt_modelfile_get_config(&mf, &mc, NULL);
    if (st == DAPT_OK) st = dapt_model_create(&mc, &m);
    st = dapt_status_agree(MPI_COMM_WORLD, st);
    if (st == DAPT_OK) st = dapt_modelfile_get_params(&mf, &m.table, m.params);
    dapt_h5_close(&mf);
    DAPT_TRY(dapt_status_agree(MPI_COMM_WORLD, st));
    DAPT_TRY(read_input(a->input, &mc, &in));

    const int have_labels = in.labels != NULL || in.values != NULL;
    const int64_t L = mc.layers, S = in.S;
    /* Loss denominators over the whole batch, so that the ranks' partial
     * losses and gradients add up to those of the undivided batch. */
    double counts[2] = {0, 0};
    for (int64_t i = 0; in.labels && i < in.rows * (in.mlm_labels ? S : 1); i++)
        counts[in.mlm_labels ? 0 : 1] += in.labels[i] != DAPT_IGNORE_LABEL;
    for (int64_t i = 0; in.values && i < in.rows; i++) counts[1] += !isnan(in.values[i]);
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD)));

    const int64_t chunk = in.rows < a->chunk ? (in.rows > 0 ? in.rows : 1) : a->chunk;
    dapt_workspace_spec spec = {chunk, S, 0, have_labels, 0};
    DAPT_TRY(dapt_workspace_create(&m, &spec, &ws));
    DAPT_TRY(dapt_calloc((void **)&g_head, (size_t)(L * mc.heads), sizeof(float), "head mask gradient"));
    DAPT_TRY(dapt_calloc((void **)&g_inter, (size_t)(L * mc.intermediate), sizeof(float), "intermediate mask gradient"));
    DAPT_TRY(dapt_calloc((void **)&g_out, (size_t)(L * mc.hidden), sizeof(float), "output mask gradient"));

    DAPT_TRY(dapt_h5_create(MPI_COMM_WORLD, a->output, a->force, &cli->cfg, &out));
    DAPT_TRY(dapt_h5_set_format(&out, "dapt-forward"));
    DAPT_TRY(dapt_h5_attr_set_string(&out, "/", "model", a->model));
    DAPT_TRY(dapt_h5_attr_set_string(&out, "/", "input", a->input));
    DAPT_TRY(dapt_h5_attr_set_int64(&out, "/", "train_mode", a->train));
    DAPT_TRY(create_outputs(&out, &mc, &in));

    int64_t rounds = (in.rows + chunk - 1) / chunk;
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD)));
    const dapt_unit_masks masks = {in.head, in.inter, in.out};
    const dapt_unit_mask_grads grads = {g_head, g_inter, g_out};
    double loss = 0.0;
    for (int64_t k = 0; k < rounds; k++) {
        int64_t r = k * chunk, n = r < in.rows ? (in.rows - r < chunk ? in.rows - r : chunk) : 0;
        dapt_status local = DAPT_OK;
        if (n > 0) {
            const size_t off = (size_t)(r * S);
            dapt_batch b = {n, S, in.ids + off, in.am ? in.am + off : NULL, in.tt ? in.tt + off : NULL,
                            have_labels && in.mlm_labels ? in.labels + off : NULL,
                            in.labels && !in.mlm_labels ? in.labels + r : NULL, (uint64_t)(in.row0 + r),
                            in.values ? in.values + r : NULL};
            dapt_run_opts opts = {0};
            opts.train = a->train;
            opts.seed = (uint64_t)cli->cfg.run.seed;
            opts.step = 0;
            opts.mlm_all_positions = 1;
            opts.mlm_denominator = counts[0];
            opts.cls_denominator = counts[1];
            local = dapt_model_forward(&m, ws, &b, &masks, &opts);
            if (local == DAPT_OK) loss += dapt_ws_loss(ws);
        }
        /* A bad batch on one rank must stop all before the collective writes. */
        DAPT_TRY(dapt_status_agree(MPI_COMM_WORLD, local));
        DAPT_TRY(write_rows(&out, &mc, &in, ws, in.row0 + r, n));
        /* Backward overwrites the MLM logits: only after they are written. */
        if (n > 0 && have_labels) local = dapt_model_backward(&m, ws, 1.0, NULL, &grads);
        DAPT_TRY(dapt_status_agree(MPI_COMM_WORLD, local));
    }
    if (have_labels) {
        DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD)));
        DAPT_TRY(allreduce_f(g_head, L * mc.heads));
        DAPT_TRY(allreduce_f(g_inter, L * mc.intermediate));
        DAPT_TRY(allreduce_f(g_out, L * mc.hidden));
        DAPT_TRY(dapt_h5_write_all(&out, "loss", DAPT_H5_F64, 0, NULL, &loss));
        const int64_t dh[2] = {L, mc.heads}, di[2] = {L, mc.intermediate}, dout[2] = {L, mc.hidden};
        DAPT_TRY(dapt_h5_write_all(&out, "head_mask_grad", DAPT_H5_F32, 2, dh, g_head));
        DAPT_TRY(dapt_h5_write_all(&out, "intermediate_mask_grad", DAPT_H5_F32, 2, di, g_inter));
        DAPT_TRY(dapt_h5_write_all(&out, "output_mask_grad", DAPT_H5_F32, 2, dout, g_out));
    }
    st = dapt_h5_commit(&out);
    if (st == DAPT_OK) {
        if (have_labels)
            dapt_info("forward: %lld sequences x %lld tokens, loss %.6f -> %s", (long long)in.B, (long long)S, loss,
                      a->output);
        else
            dapt_info("forward: %lld sequences x %lld tokens -> %s", (long long)in.B, (long long)S, a->output);
    }
cleanup:
    if (st != DAPT_OK && out.writable) dapt_h5_abort(&out);
    free(g_head);
    free(g_inter);
    free(g_out);
    dapt_workspace_free(ws);
    free_input(&in);
    dapt_model_free(&m);
    return st;
}

int dapt_cmd_forward(int argc, char **argv)
{
    fwd_args a = {.chunk = 16};
    const dapt_cli_option opts[] = {
        {.name = "model", .kind = DAPT_OPT_STRING, .dest = &a.model},
        {.name = "input", .kind = DAPT_OPT_STRING, .dest = &a.input},
        {.name = "output", .kind = DAPT_OPT_STRING, .dest = &a.output},
        {.name = "train-mode", .kind = DAPT_OPT_FLAG, .dest = &a.train},
        {.name = "batch-size", .kind = DAPT_OPT_INT, .dest = &a.chunk, .min = 1, .max = 1000000},
        {.name = "force", .kind = DAPT_OPT_FLAG, .dest = &a.force},
        {.name = NULL}};
    const dapt_cli_command cmd = {.name = "forward", .usage = usage, .options = opts, .max_args = 0, .run = run,
                                  .ctx = &a};
    return dapt_cli_main(argc, argv, &cmd);
}
