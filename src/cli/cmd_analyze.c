/* dapt analyze: distributed analysis of dapt's HDF5 outputs on ScaLAPACK
 * (spectrum of a matrix, CKA between two models, weight changes); the
 * numerics live in src/analysis, docs/analysis.md has the equations. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "dapt/analysis.h"
#include "dapt/cli.h"
#include "dapt/fsio.h"
#include "dapt/h5io.h"
#include "dapt/log.h"
#include "dapt/modelfile.h"
#include "dapt/mlm.h"
#include "dapt/tokenizer.h"

static void usage(void)
{
    printf("usage: dapt analyze spectrum FILE DATASET --output OUT.h5 [--method cov|svd] [--no-center] [--top K]\n"
           "       dapt analyze cka A.h5 B.h5 --output OUT.h5 --corpus C.h5 [--samples N] [--batch B]\n"
           "                        [--pool mean|first] [--pairs diagonal|all] [--save-hidden H.h5] [--tokenizer PATH]\n"
           "       dapt analyze cka A.h5 B.h5 --output OUT.h5 --dataset NAME[,NAME_B]\n"
           "       dapt analyze delta BEFORE.h5 AFTER.h5 --output OUT.h5 [--importance I.h5 [--source NAME]]\n"
           "   common: [--grid RxC] [--block B] [--force]\n\n"
           "spectrum  singular values, explained variance, effective rank (entropy, participation\n"
           "          ratio), stable rank and anisotropy (mean pairwise cosine) of the 2-D dataset\n"
           "          DATASET [N, d] of any HDF5 file, or of the rows of a 3-/4-D one (DATASET[i]\n"
           "          indexes its first dimension: hidden_states[12] of dapt forward's output);\n"
           "          --top K writes the K first principal directions.\n"
           "          --method cov (default): eigenvalues of the centred covariance; svd: PDGESVD.\n"
           "cka       linear CKA and its debiased form between two models' hidden states of every\n"
           "          layer (pooled per sequence) on the first N held-out sequences of the corpus\n"
           "          (default 512); --pairs all compares every layer of A with every layer of B.\n"
           "          With --dataset, A and B are any HDF5 files holding [N, d] matrices.\n"
           "delta     for every weight matrix of two model files or checkpoints of one shape: the\n"
           "          singular values, stable rank and relative Frobenius norm of W_after - W_before,\n"
           "          the change of every head and FFN neuron, and with --importance the Spearman\n"
           "          correlation of unit importance and change (source: NAME, else the only soft\n"
           "          mask, else 'general').\n"
           "Matrices are float64, block-cyclic on a RxC BLACS grid (default: the most square one\n"
           "for the job's ranks) with BxB blocks (default 64); each rank reads only its blocks.\n"
           "An existing OUT.h5 is refused unless --force.\n\n");
    dapt_cli_print_common_help();
}

typedef struct an_args {
    const char *sub, *pos[2], *output, *corpus, *dataset, *save_hidden, *importance, *source, *tokenizer, *grid;
    int method, no_center, center, pairs_all, force, nprow, npcol, block, pool_choice;
    dapt_pool pool;
    int64_t top, samples, batch, block64;
    const char *command; /* the command line, for the provenance attribute */
} an_args;

/* What the option table cannot say: the subcommand, the defaults that
 * depend on the configuration, and options that go together. */
static dapt_status check_args(const dapt_cli *cli, an_args *a)
{
    a->sub = cli->args[0];
    if (strcmp(a->sub, "spectrum") && strcmp(a->sub, "cka") && strcmp(a->sub, "delta"))
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt analyze: the first argument is spectrum, cka or delta, not '%s' (see dapt analyze --help)",
                          a->sub);
    if (cli->nargs != 3) return DAPT_ERROR(DAPT_ERR_ARG, "dapt analyze %s: needs two arguments (see dapt analyze --help)", a->sub);
    a->pos[0] = cli->args[1];
    a->pos[1] = cli->args[2];
    a->center = !a->no_center;
    a->block = (int)a->block64;
    a->pool = a->pool_choice ? DAPT_POOL_FIRST : DAPT_POOL_MEAN;
    if (a->grid) DAPT_CHECK(dapt_pgrid_parse(a->grid, &a->nprow, &a->npcol));
    if (!a->tokenizer && cli->cfg.tokenizer.path[0]) a->tokenizer = cli->cfg.tokenizer.path;
    if (!a->output) return DAPT_ERROR(DAPT_ERR_ARG, "dapt analyze %s: --output is required", a->sub);
    if (!strcmp(a->sub, "cka") && !a->corpus == !a->dataset)
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt analyze cka: give either --corpus (two models) or --dataset (two matrices)");
    if (a->source && !a->importance) return DAPT_ERROR(DAPT_ERR_ARG, "dapt analyze delta: --source needs --importance");
    return DAPT_OK;
}

/* The grid of the options, or the most square one. */
static dapt_status make_grid(const an_args *a, dapt_pgrid *g)
{
    int size = 1, r = a->nprow, c = a->npcol;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size)));
    if (!r) dapt_pgrid_shape(size, &r, &c);
    return dapt_pgrid_create(MPI_COMM_WORLD, r, c, g);
}

static dapt_status refuse_existing(const an_args *a)
{
    int exists = dapt_fs_exists(a->output);
    DAPT_CHECK(DAPT_MPI(MPI_Bcast(&exists, 1, MPI_INT, 0, MPI_COMM_WORLD)));
    if (exists && !a->force) return DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists: pass --force to replace it", a->output);
    return DAPT_OK;
}

static int is_root(void)
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank == 0;
}

/* ---- spectrum ------------------------------------------------------------ */

static dapt_status write_spectrum(dapt_h5file *f, const an_args *a, const dapt_spectrum *s)
{
    const int64_t c1[1] = {s->count}, d1[1] = {s->dim}, kd[2] = {s->top_k, s->dim};
    DAPT_CHECK(dapt_h5_write_all(f, "spectrum/singular_values", DAPT_H5_F64, 1, c1, s->singular));
    DAPT_CHECK(dapt_h5_write_all(f, "spectrum/explained_variance", DAPT_H5_F64, 1, c1, s->variance));
    DAPT_CHECK(dapt_h5_write_all(f, "spectrum/explained_variance_ratio", DAPT_H5_F64, 1, c1, s->variance_ratio));
    DAPT_CHECK(dapt_h5_write_all(f, "spectrum/mean", DAPT_H5_F64, 1, d1, s->mean));
    if (s->top_k) DAPT_CHECK(dapt_h5_write_all(f, "spectrum/directions", DAPT_H5_F64, 2, kd, s->directions));
    const char *g = "spectrum";
    DAPT_CHECK(dapt_h5_attr_set_string(f, g, "file", a->pos[0]));
    DAPT_CHECK(dapt_h5_attr_set_string(f, g, "dataset", a->pos[1]));
    DAPT_CHECK(dapt_h5_attr_set_string(f, g, "method", a->method ? "svd" : "cov"));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, g, "centered", a->center));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, g, "rows", s->rows));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, g, "dim", s->dim));
    DAPT_CHECK(dapt_h5_attr_set_double(f, g, "total_variance", s->total_variance));
    DAPT_CHECK(dapt_h5_attr_set_double(f, g, "effective_rank", s->erank_entropy));
    DAPT_CHECK(dapt_h5_attr_set_double(f, g, "participation_ratio", s->participation));
    DAPT_CHECK(dapt_h5_attr_set_double(f, g, "stable_rank", s->stable_rank));
    DAPT_CHECK(dapt_h5_attr_set_double(f, g, "anisotropy", s->anisotropy));
    return dapt_h5_attr_set_int64(f, g, "zero_rows", s->zero_rows);
}

static void print_spectrum(const an_args *a, const dapt_pgrid *g, const dapt_spectrum *s, double secs)
{
    if (!is_root()) return;
    printf("spectrum of %s:%s  [%lld x %lld]  %s, %s  (grid %dx%d, %.3f s)\n", a->pos[0], a->pos[1], (long long)s->rows,
           (long long)s->dim, a->method ? "svd" : "covariance", a->center ? "centred" : "not centred", g->nprow, g->npcol,
           secs);
    printf("  singular values:");
    for (int64_t i = 0; i < s->count && i < 8; i++) printf(" %.6g", s->singular[i]);
    printf("%s\n  explained variance ratio:", s->count > 8 ? " ..." : "");
    double cum = 0;
    for (int64_t i = 0; i < s->count && i < 8; i++) printf(" %.4f", s->variance_ratio[i]);
    int64_t k90 = 0;
    for (; k90 < s->count && cum < 0.9; k90++) cum += s->variance_ratio[k90];
    printf("%s\n  components for 90%% of the variance: %lld of %lld\n", s->count > 8 ? " ..." : "", (long long)k90,
           (long long)s->count);
    printf("  effective rank (entropy) %.4f   participation ratio %.4f   stable rank %.4f\n", s->erank_entropy,
           s->participation, s->stable_rank);
    printf("  anisotropy (mean pairwise cosine, raw rows) %.6f%s\n", s->anisotropy,
           s->zero_rows ? " (zero rows left out)" : "");
    printf("  wrote %s\n", a->output);
}

static dapt_status run_spectrum(const dapt_cli *cli, const an_args *a)
{
    dapt_pgrid g;
    dapt_h5file in, out;
    dapt_dmat X;
    dapt_spectrum s;
    memset(&in, 0, sizeof in);
    memset(&X, 0, sizeof X);
    memset(&s, 0, sizeof s);
    DAPT_CHECK(refuse_existing(a));
    DAPT_CHECK(make_grid(a, &g));
    dapt_status st = DAPT_OK;
    double t0 = dapt_now();
    DAPT_TRY(dapt_status_agree(g.comm, dapt_h5_open(g.comm, a->pos[0], &in)));
    DAPT_TRY(dapt_dmat_read_h5(&in, a->pos[1], &g, a->block, &X));
    dapt_h5_close(&in);
    dapt_spectrum_opts o = {a->method ? DAPT_SPECTRUM_SVD : DAPT_SPECTRUM_COV, a->center, a->top};
    DAPT_TRY(dapt_spectrum_compute(&X, &o, &s));
    double secs = dapt_now() - t0;
    dapt_analysis_input inputs[] = {{"file", a->pos[0]}};
    DAPT_TRY(dapt_analysis_create(&g, a->output, a->force, &cli->cfg, "spectrum", a->command, inputs, 1, a->block, &out));
    st = write_spectrum(&out, a, &s);
    if (st != DAPT_OK) dapt_h5_abort(&out);
    else st = dapt_h5_commit(&out);
    if (st == DAPT_OK) print_spectrum(a, &g, &s, secs);
cleanup:
    dapt_h5_close(&in);
    dapt_spectrum_free(&s);
    dapt_dmat_free(&X);
    dapt_pgrid_free(&g);
    return st;
}

/* ---- cka ------------------------------------------------------------------ */

/* The matrices of one side: every layer's pooled hidden states of a model,
 * or one dataset. */
typedef struct side {
    int64_t count;
    dapt_dmat *mats;
    dapt_cka_side *prep;
    int64_t hidden, layers;
} side;

static void side_free(side *s)
{
    for (int64_t i = 0; s->mats && i < s->count; i++) dapt_dmat_free(&s->mats[i]);
    for (int64_t i = 0; s->prep && i < s->count; i++) dapt_cka_side_free(&s->prep[i]);
    free(s->mats);
    free(s->prep);
    memset(s, 0, sizeof *s);
}

static dapt_status side_alloc(side *s, int64_t count)
{
    s->count = count;
    DAPT_CHECK(dapt_calloc((void **)&s->mats, (size_t)count, sizeof *s->mats, "CKA matrices"));
    return dapt_calloc((void **)&s->prep, (size_t)count, sizeof *s->prep, "CKA sides");
}

/* The sequence layout and MLM-free ids of the model's tokenizer. */
static dapt_status probe_spec(const an_args *a, const char *model, const dapt_model_meta *meta, const dapt_config *cfg,
                              dapt_seq_spec *ss)
{
    dapt_mlm_spec mlm;
    *ss = (dapt_seq_spec){cfg->data.seq_len, strcmp(cfg->data.packing, "document") ? DAPT_PACK_CONCAT : DAPT_PACK_DOCUMENT,
                          cfg->data.eval_fraction, (uint64_t)cfg->run.seed, -1, -1, -1};
    dapt_tokenizer *tok = NULL;
    if (a->tokenizer) DAPT_CHECK(dapt_tokenizer_load(a->tokenizer, &tok));
    else if (meta->ntokenizer == 0) return DAPT_ERROR(DAPT_ERR_ARG, "%s has no tokenizer files; pass --tokenizer", model);
    else DAPT_CHECK(dapt_model_tokenizer(meta, model, &tok));
    dapt_status st = dapt_mlm_spec_from_tokenizer(tok, a->tokenizer ? a->tokenizer : model, 0.15, &mlm, &ss->begin_id,
                                                  &ss->end_id, &ss->pad_id);
    dapt_tokenizer_free(tok);
    return st;
}

/* Runs one model over the probe sequences: s->mats[0..layers]. */
static dapt_status probe_model(const dapt_cli *cli, const an_args *a, const char *path, const dapt_pgrid *g,
                               int64_t *samples, side *s)
{
    MPI_Comm comm = g->comm;
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    dapt_model m;
    float *params = NULL;
    dapt_sequences *seqs = NULL;
    int have_model = 0;
    memset(&meta, 0, sizeof meta);
    memset(&table, 0, sizeof table);
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_status_agree(comm, dapt_modelfile_load(comm, path, &mc, &table, &params, &meta)));
    DAPT_TRY(dapt_model_create(&mc, &m));
    have_model = 1;
    memcpy(m.params, params, sizeof(float) * table.total);
    dapt_seq_spec ss;
    DAPT_TRY(dapt_status_agree(comm, probe_spec(a, path, &meta, &cli->cfg, &ss)));
    if (ss.seq_len > mc.max_position)
        DAPT_THROW(DAPT_ERR_CONFIG, "data.seq_len = %lld exceeds the %lld positions of %s", (long long)ss.seq_len,
                   (long long)mc.max_position, path);
    if (cli->cfg.data.verify) DAPT_TRY(dapt_h5_verify_file(comm, a->corpus));
    DAPT_TRY(dapt_status_agree(comm, dapt_sequences_open(a->corpus, &ss, &seqs)));
    int64_t avail = dapt_sequences_count(seqs, DAPT_SPLIT_EVAL);
    if (*samples > avail) *samples = avail;
    if (*samples < 4)
        DAPT_THROW(DAPT_ERR_CONFIG, "%s has %lld held-out sequences of %lld tokens; CKA needs at least 4 (data.eval_fraction)",
                   a->corpus, (long long)avail, (long long)ss.seq_len);
    DAPT_TRY(side_alloc(s, mc.layers + 1));
    s->hidden = mc.hidden;
    s->layers = mc.layers;
    DAPT_TRY(dapt_probe_hidden(&m, seqs, *samples, a->pool, a->batch, g, a->block, s->mats));
cleanup:
    dapt_sequences_close(seqs);
    if (have_model) dapt_model_free(&m);
    free(params);
    dapt_param_table_free(&table);
    dapt_model_meta_free(&meta);
    return st;
}

static dapt_status save_hidden(const dapt_cli *cli, const an_args *a, const dapt_pgrid *g, const side *sa,
                               const side *sb)
{
    dapt_h5file f;
    dapt_analysis_input in[] = {{"model_a", a->pos[0]}, {"model_b", a->pos[1]}, {"corpus", a->corpus}};
    DAPT_CHECK(dapt_analysis_create(g, a->save_hidden, a->force, &cli->cfg, "hidden", a->command, in, 3, a->block, &f));
    dapt_status st = DAPT_OK;
    for (int side_i = 0; side_i < 2; side_i++) {
        const side *s = side_i ? sb : sa;
        for (int64_t l = 0; l < s->count; l++) {
            char name[64];
            snprintf(name, sizeof name, "%s/layer_%lld", side_i ? "b" : "a", (long long)l);
            DAPT_TRY(dapt_dmat_write_h5(&f, name, &s->mats[l]));
        }
    }
    return dapt_h5_commit(&f);
cleanup:
    dapt_h5_abort(&f);
    return st;
}

static dapt_status read_dataset_side(const an_args *a, int b, const dapt_pgrid *g, side *s)
{
    char names[512];
    snprintf(names, sizeof names, "%s", a->dataset);
    char *comma = strchr(names, ',');
    const char *name = names;
    if (comma) {
        *comma = 0;
        if (b) name = comma + 1;
    }
    dapt_h5file f;
    memset(&f, 0, sizeof f);
    DAPT_CHECK(side_alloc(s, 1));
    dapt_status st = dapt_status_agree(g->comm, dapt_h5_open(g->comm, a->pos[b], &f));
    if (st == DAPT_OK) st = dapt_dmat_read_h5(&f, name, g, a->block, &s->mats[0]);
    dapt_h5_close(&f);
    if (st == DAPT_OK) s->hidden = s->mats[0].n;
    return st;
}

static dapt_status write_cka(dapt_h5file *f, const an_args *a, int64_t samples, const double *lin, const double *deb,
                             int ndim, const int64_t *dims)
{
    DAPT_CHECK(dapt_h5_write_all(f, "cka/linear", DAPT_H5_F64, ndim, dims, lin));
    DAPT_CHECK(dapt_h5_write_all(f, "cka/debiased", DAPT_H5_F64, ndim, dims, deb));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "cka", "a", a->pos[0]));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "cka", "b", a->pos[1]));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "cka", "mode", a->corpus ? "models" : "datasets"));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "cka", "pairs", ndim == 1 ? "diagonal" : "all"));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, "cka", "samples", samples));
    if (a->corpus) {
        DAPT_CHECK(dapt_h5_attr_set_string(f, "cka", "corpus", a->corpus));
        DAPT_CHECK(dapt_h5_attr_set_string(f, "cka", "pool", a->pool == DAPT_POOL_MEAN ? "mean" : "first"));
        DAPT_CHECK(dapt_h5_attr_set_string(f, "cka", "split", "held-out"));
    } else {
        DAPT_CHECK(dapt_h5_attr_set_string(f, "cka", "datasets", a->dataset));
    }
    return DAPT_OK;
}

static void print_cka(const an_args *a, const dapt_pgrid *g, int64_t samples, const double *lin, const double *deb,
                      int64_t na, int64_t nb, int diagonal, double secs)
{
    if (!is_root()) return;
    printf("linear CKA of %s and %s on %lld %s  (grid %dx%d, %.3f s)\n", a->pos[0], a->pos[1], (long long)samples,
           a->corpus ? "probe sequences" : "rows", g->nprow, g->npcol, secs);
    if (diagonal) {
        printf("  hidden state          CKA   debiased\n");
        for (int64_t l = 0; l < na; l++) {
            if (l) printf("  layer %-9lld", (long long)l - 1);
            else printf("  %-15s", "embeddings");
            printf(" %10.6f %10.6f\n", lin[l], deb[l]);
        }
    } else {
        printf("  CKA (rows: layers of A, columns: layers of B)\n");
        for (int64_t i = 0; i < na && i < 25; i++) {
            printf("  %3lld", (long long)i);
            for (int64_t j = 0; j < nb && j < 13; j++) printf(" %5.3f", lin[i * nb + j]);
            printf("\n");
        }
    }
    printf("  wrote %s\n", a->output);
}

static dapt_status cka_all(const an_args *a, side *sa, side *sb, double **lin, double **deb, int64_t *cells)
{
    const int diagonal = a->corpus && !a->pairs_all;
    if (diagonal && sa->count != sb->count)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s has %lld layers and %s %lld: pass --pairs all to compare them",
                          a->pos[0], (long long)sa->layers, a->pos[1], (long long)sb->layers);
    for (int64_t i = 0; i < sa->count; i++) DAPT_CHECK(dapt_cka_prepare(&sa->mats[i], &sa->prep[i]));
    for (int64_t i = 0; i < sb->count; i++) DAPT_CHECK(dapt_cka_prepare(&sb->mats[i], &sb->prep[i]));
    *cells = diagonal ? sa->count : sa->count * sb->count;
    DAPT_CHECK(dapt_calloc((void **)lin, (size_t)*cells, sizeof(double), "CKA values"));
    DAPT_CHECK(dapt_calloc((void **)deb, (size_t)*cells, sizeof(double), "CKA values"));
    for (int64_t i = 0; i < sa->count; i++)
        for (int64_t j = 0; j < sb->count; j++) {
            if (diagonal && i != j) continue;
            int64_t c = diagonal ? i : i * sb->count + j;
            DAPT_CHECK(dapt_cka_pair(&sa->mats[i], &sa->prep[i], &sb->mats[j], &sb->prep[j], &(*lin)[c], &(*deb)[c]));
        }
    return DAPT_OK;
}

static dapt_status run_cka(const dapt_cli *cli, const an_args *a)
{
    dapt_pgrid g;
    side sa, sb;
    double *lin = NULL, *deb = NULL;
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    DAPT_CHECK(refuse_existing(a));
    DAPT_CHECK(make_grid(a, &g));
    dapt_status st = DAPT_OK;
    double t0 = dapt_now();
    int64_t samples = a->samples, cells = 0;
    if (a->corpus) {
        DAPT_TRY(probe_model(cli, a, a->pos[0], &g, &samples, &sa));
        DAPT_TRY(probe_model(cli, a, a->pos[1], &g, &samples, &sb));
        if (a->save_hidden) DAPT_TRY(save_hidden(cli, a, &g, &sa, &sb));
    } else {
        DAPT_TRY(read_dataset_side(a, 0, &g, &sa));
        DAPT_TRY(read_dataset_side(a, 1, &g, &sb));
        samples = sa.mats[0].m;
        if (sb.mats[0].m != samples)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s and %s: the matrices have %lld and %lld rows; CKA compares the same rows",
                       a->pos[0], a->pos[1], (long long)samples, (long long)sb.mats[0].m);
    }
    DAPT_TRY(dapt_status_agree(g.comm, cka_all(a, &sa, &sb, &lin, &deb, &cells)));
    double secs = dapt_now() - t0;
    const int diagonal = a->corpus && !a->pairs_all;
    const int64_t dims[2] = {sa.count, diagonal ? 0 : sb.count};
    dapt_analysis_input in[] = {{"a", a->pos[0]}, {"b", a->pos[1]}, {"corpus", a->corpus ? a->corpus : ""}};
    dapt_h5file out;
    DAPT_TRY(dapt_analysis_create(&g, a->output, a->force, &cli->cfg, "cka", a->command, in, a->corpus ? 3 : 2, a->block,
                                  &out));
    st = write_cka(&out, a, samples, lin, deb, diagonal ? 1 : 2, dims);
    if (st != DAPT_OK) dapt_h5_abort(&out);
    else st = dapt_h5_commit(&out);
    if (st == DAPT_OK) print_cka(a, &g, samples, lin, deb, sa.count, sb.count, diagonal, secs);
cleanup:
    free(lin);
    free(deb);
    side_free(&sa);
    side_free(&sb);
    dapt_pgrid_free(&g);
    return st;
}

/* ---- delta ----------------------------------------------------------------- */

static void print_delta(const an_args *a, const dapt_pgrid *g, const dapt_delta_result *r, double secs)
{
    if (!is_root()) return;
    printf("weight change %s -> %s: %zu matrices  (grid %dx%d, %.3f s)\n", a->pos[0], a->pos[1], r->ntensors, g->nprow,
           g->npcol, secs);
    printf("  %-28s %12s %12s %10s\n", "tensor", "|dW|_F", "|dW|/|W|", "st.rank");
    for (size_t i = 0; i < r->ntensors; i++) {
        const char *n = r->names[i];
        /* One screen: embeddings, heads and the first and last layers. */
        int l = -1;
        if (sscanf(n, "layer.%d.", &l) == 1 && l != 0 && l != r->mc.layers - 1) continue;
        printf("  %-28s %12.4g %12.4g %10.3f\n", n, r->stats[i].fro, r->stats[i].rel_fro, r->stats[i].stable_rank);
    }
    const char *kinds[3] = {"heads", "intermediate neurons", "output neurons"};
    for (int k = 0; k < 3; k++) {
        const int64_t n = r->units.layers * r->units.units[k];
        double mean = 0;
        for (int64_t i = 0; i < n; i++) mean += r->units.before[k][i] > 0 ? r->units.change[k][i] / r->units.before[k][i] : 0;
        printf("  %-21s mean relative change %.4g", kinds[k], n ? mean / (double)n : 0.0);
        if (r->have_importance[k] && isnan(r->spearman_relative[k]))
            printf("   Spearman undefined (importance constant over the units)");
        else if (r->have_importance[k])
            printf("   Spearman(importance, relative change) %+.4f  (absolute change %+.4f)", r->spearman_relative[k],
                   r->spearman_absolute[k]);
        printf("\n");
    }
    if (r->source[0]) printf("  importance: %s of %s\n", r->source, a->importance);
    printf("  wrote %s\n", a->output);
}

static dapt_status run_delta(const dapt_cli *cli, const an_args *a)
{
    dapt_pgrid g;
    dapt_delta_result r;
    DAPT_CHECK(refuse_existing(a));
    DAPT_CHECK(make_grid(a, &g));
    double t0 = dapt_now();
    dapt_delta_opts o = {a->pos[0], a->pos[1], a->importance, a->source, a->block};
    dapt_status st = dapt_delta_models(&g, &o, &r);
    if (st != DAPT_OK) {
        dapt_pgrid_free(&g);
        return st;
    }
    double secs = dapt_now() - t0;
    dapt_analysis_input in[] = {{"before", a->pos[0]}, {"after", a->pos[1]}, {"importance", a->importance}};
    dapt_h5file out;
    st = dapt_analysis_create(&g, a->output, a->force, &cli->cfg, "delta", a->command, in, a->importance ? 3 : 2,
                              a->block, &out);
    if (st == DAPT_OK) {
        st = dapt_delta_write(&out, &r);
        if (st != DAPT_OK) dapt_h5_abort(&out);
        else st = dapt_h5_commit(&out);
    }
    if (st == DAPT_OK) print_delta(a, &g, &r, secs);
    dapt_delta_result_free(&r);
    dapt_pgrid_free(&g);
    return st;
}

/* Peak resident memory of every rank (getrusage), largest and smallest:
 * what the distribution saves is visible without a profiler.  Collective
 * over MPI_COMM_WORLD. */
static void print_memory(void)
{
    struct rusage ru;
    double mb = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0, hi = mb, lo = mb;
    if (MPI_Allreduce(&mb, &hi, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS ||
        MPI_Allreduce(&mb, &lo, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
        return;
    if (is_root()) printf("  peak memory per rank: %.1f MB (largest), %.1f MB (smallest)\n", hi, lo);
}

/* The body: every rank takes part. */
static dapt_status run(dapt_cli *cli, void *ctx)
{
    an_args *a = ctx;
    DAPT_CHECK(dapt_status_agree(MPI_COMM_WORLD, check_args(cli, a)));
    dapt_status st;
    if (!strcmp(a->sub, "spectrum")) st = run_spectrum(cli, a);
    else if (!strcmp(a->sub, "cka")) st = run_cka(cli, a);
    else st = run_delta(cli, a);
    DAPT_CHECK(dapt_status_agree(MPI_COMM_WORLD, st));
    print_memory();
    return DAPT_OK;
}

int dapt_cmd_analyze(int argc, char **argv)
{
    an_args a;
    memset(&a, 0, sizeof a);
    a.block64 = 64;
    a.samples = 512;
    a.batch = 16;
    /* The whole command line, however long (a provenance attribute is never truncated). */
    size_t need = sizeof "dapt ";
    for (int i = 0; i < argc; i++) need += strlen(argv[i]) + 1;
    char *command = malloc(need);
    if (command) {
        size_t used = 0;
        for (int i = 0; i < argc; i++) {
            const char *sep = i ? " " : "dapt ";
            const size_t ls = strlen(sep), la = strlen(argv[i]);
            memcpy(command + used, sep, ls);
            memcpy(command + used + ls, argv[i], la);
            used += ls + la;
        }
        command[used] = '\0';
    }
    a.command = command ? command : "dapt analyze (command line not recorded: out of memory)";
    const dapt_cli_option options[] = {
        {.name = "output", .short_name = 'o', .kind = DAPT_OPT_STRING, .dest = &a.output},
        {.name = "corpus", .kind = DAPT_OPT_STRING, .dest = &a.corpus},
        {.name = "dataset", .kind = DAPT_OPT_STRING, .dest = &a.dataset},
        {.name = "save-hidden", .kind = DAPT_OPT_STRING, .dest = &a.save_hidden},
        {.name = "importance", .kind = DAPT_OPT_STRING, .dest = &a.importance},
        {.name = "source", .kind = DAPT_OPT_STRING, .dest = &a.source},
        {.name = "tokenizer", .kind = DAPT_OPT_STRING, .dest = &a.tokenizer},
        {.name = "grid", .kind = DAPT_OPT_STRING, .dest = &a.grid},
        {.name = "top", .kind = DAPT_OPT_INT, .dest = &a.top, .min = 0, .max = INT64_MAX},
        {.name = "samples", .kind = DAPT_OPT_INT, .dest = &a.samples, .min = 4, .max = INT64_MAX},
        {.name = "batch", .kind = DAPT_OPT_INT, .dest = &a.batch, .min = 1, .max = INT64_MAX},
        {.name = "block", .kind = DAPT_OPT_INT, .dest = &a.block64, .min = 1, .max = 1 << 16},
        {.name = "method", .kind = DAPT_OPT_CHOICE, .dest = &a.method, .arg = "cov|svd"},
        {.name = "pool", .kind = DAPT_OPT_CHOICE, .dest = &a.pool_choice, .arg = "mean|first"},
        {.name = "pairs", .kind = DAPT_OPT_CHOICE, .dest = &a.pairs_all, .arg = "diagonal|all"},
        {.name = "no-center", .kind = DAPT_OPT_FLAG, .dest = &a.no_center},
        {.name = "force", .kind = DAPT_OPT_FLAG, .dest = &a.force},
        {.name = NULL}};
    const dapt_cli_command cmd = {.name = "analyze", .usage = usage, .options = options, .min_args = 1, .max_args = 3,
                                  .run = run, .ctx = &a};
    const int rc = dapt_cli_main(argc, argv, &cmd);
    free(command);
    return rc;
}
