/* Training checkpoints (see dapt/checkpoint.h). */
#include "dapt/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dapt/fsio.h"
#include "dapt/log.h"

#define CKPT_FORMAT "dapt-checkpoint-1"

uint32_t dapt_crc32(const void *data, size_t bytes)
{
    const unsigned char *p = data;
    uLong crc = crc32(0L, Z_NULL, 0);
    while (bytes > 0) { /* zlib takes 32-bit lengths */
        uInt chunk = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
        crc = crc32(crc, p, chunk);
        p += chunk;
        bytes -= chunk;
    }
    return (uint32_t)crc;
}

void dapt_checkpoint_path(const char *dir, int64_t step, char *out, size_t len)
{
    snprintf(out, len, "%s/step-%08lld.h5", dir, (long long)step);
}

static int parse_step_name(const char *name, int64_t *step)
{
    long long s;
    int used = 0;
    if (sscanf(name, "step-%lld.h5%n", &s, &used) != 1 || name[used] != '\0' || s < 0) return 0;
    *step = s;
    return 1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

dapt_status dapt_checkpoint_list(const char *dir, int64_t **steps, size_t *n)
{
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return DAPT_OK;
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot list checkpoints: %s", dir, strerror(errno));
    }
    size_t cap = 0;
    struct dirent *e;
    dapt_status st = DAPT_OK;
    while ((e = readdir(d)) != NULL) {
        int64_t s;
        if (!parse_step_name(e->d_name, &s)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *p = realloc(*steps, cap * sizeof *p);
            if (!p) {
                st = DAPT_ERROR(DAPT_ERR_NOMEM, "%s: out of memory listing checkpoints", dir);
                break;
            }
            *steps = p;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    if (st != DAPT_OK) {
        free(*steps);
        *steps = NULL;
        *n = 0;
        return st;
    }
    if (*n) qsort(*steps, *n, sizeof **steps, cmp_i64);
    return DAPT_OK;
}

/* ---- save --------------------------------------------------------------- */

static dapt_status set_crc(dapt_h5file *f, const char *name, const float *data, size_t numel)
{
    return dapt_h5_attr_set_int64(f, name, "crc32", dapt_crc32(data, numel * sizeof *data));
}

static dapt_status write_tensor(dapt_h5file *f, MPI_Comm comm, const char *group, const dapt_tensor *t,
                                const float *buf)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    char name[160];
    snprintf(name, sizeof name, "%s/%s", group, t->name);
    int64_t dims[2] = {t->shape[0], t->shape[1]};
    const float *data = buf + t->offset;
    /* Rows shared out over the ranks: every rank writes its own hyperslab. */
    int64_t rows = dims[0], cols = t->ndim == 2 ? dims[1] : 1;
    int64_t q = rows / size, rem = rows % size;
    int64_t begin = rank * q + (rank < rem ? rank : rem), count = q + (rank < rem);
    DAPT_CHECK(dapt_h5_write_rows(f, name, DAPT_H5_F32, t->ndim, dims, begin, count, data + begin * cols));
    return set_crc(f, name, data, t->numel);
}

static dapt_status write_latest(const char *dir, int64_t step)
{
    char path[4200], line[64];
    snprintf(path, sizeof path, "%s/latest", dir);
    int n = snprintf(line, sizeof line, "step-%08lld.h5\n", (long long)step);
    return dapt_fs_write_atomic(path, line, (size_t)n, 1);
}

/* Removes the oldest checkpoints beyond keep (never `current`). */
static void prune(const char *dir, int64_t keep, int64_t current)
{
    int64_t *steps = NULL;
    size_t n = 0;
    if (dapt_checkpoint_list(dir, &steps, &n) != DAPT_OK) {
        dapt_warn("checkpoint retention skipped: %s", dapt_error_message());
        dapt_error_clear();
        return;
    }
    for (size_t i = 0; i + (size_t)keep < n; i++) {
        if (steps[i] == current) continue;
        char path[4200];
        dapt_checkpoint_path(dir, steps[i], path, sizeof path);
        if (unlink(path) != 0) dapt_warn("cannot remove old checkpoint %s: %s", path, strerror(errno));
    }
    free(steps);
}

static dapt_status agree_status(MPI_Comm comm, dapt_status st)
{
    int mine = (int)st, worst = 0;
    if (MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS)
        return DAPT_ERROR(DAPT_ERR_MPI, "MPI_Allreduce failed while agreeing on a checkpoint status");
    if (worst != DAPT_OK && st == DAPT_OK)
        return DAPT_ERROR((dapt_status)worst, "checkpoint: another rank failed (%s)",
                          dapt_status_name((dapt_status)worst));
    return st;
}

dapt_status dapt_checkpoint_save(MPI_Comm comm, const char *dir, const dapt_config *cfg,
                                 const dapt_model *m, const dapt_model_meta *meta,
                                 const float *exp_avg, const float *exp_avg_sq,
                                 const dapt_ckpt_state *state, int64_t keep, dapt_ckpt_save_fn save,
                                 void *save_ctx)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    dapt_status st = DAPT_OK;
    if (rank == 0 && mkdir(dir, 0777) != 0 && errno != EEXIST)
        st = DAPT_ERROR(DAPT_ERR_IO, "%s: cannot create the checkpoint directory: %s", dir, strerror(errno));
    DAPT_CHECK(agree_status(comm, st));
    char path[4200];
    dapt_checkpoint_path(dir, state->step, path, sizeof path);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(comm, path, 1, cfg, &f));
    DAPT_TRY(dapt_modelfile_put(&f, &m->config, &m->table, m->params, meta));
    DAPT_TRY(dapt_h5_attr_set_string(&f, "/", "checkpoint_format", CKPT_FORMAT));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "step", state->step));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "samples", state->samples));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "adam_step", state->adam_step));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "bad_run", state->bad_run));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "seed", (int64_t)state->seed));
    for (size_t i = 0; i < m->table.count; i++) {
        const dapt_tensor *t = &m->table.tensors[i];
        char name[160];
        snprintf(name, sizeof name, "params/%s", t->name);
        DAPT_TRY(set_crc(&f, name, m->params + t->offset, t->numel));
        DAPT_TRY(write_tensor(&f, comm, "optim/exp_avg", t, exp_avg));
        DAPT_TRY(write_tensor(&f, comm, "optim/exp_avg_sq", t, exp_avg_sq));
    }
    if (save) DAPT_TRY(save(save_ctx, &f));
    DAPT_TRY(dapt_h5_commit(&f));
    /* The pointer moves only once the file is complete under its name. */
    if (rank == 0) {
        st = write_latest(dir, state->step);
        if (st == DAPT_OK) prune(dir, keep, state->step);
    }
    return agree_status(comm, st);
cleanup:
    dapt_h5_abort(&f);
    return st;
}

/* ---- load --------------------------------------------------------------- */

static dapt_status read_tensor(const dapt_h5file *f, const char *group, const dapt_tensor *t, float *buf)
{
    char name[160];
    snprintf(name, sizeof name, "%s/%s", group, t->name);
    int ndim;
    int64_t dims[DAPT_H5_MAX_DIMS];
    dapt_h5_type type;
    DAPT_CHECK(dapt_h5_info(f, name, &ndim, dims, &type));
    if (ndim != t->ndim || dims[0] != t->shape[0] || (ndim == 2 && dims[1] != t->shape[1]) || type != DAPT_H5_F32)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: stored as %d-D %s [%lld, %lld], the model needs float32 [%lld, %lld]",
                          f->path, name, ndim, dapt_h5_type_name(type), (long long)dims[0],
                          (long long)(ndim == 2 ? dims[1] : 1), (long long)t->shape[0], (long long)t->shape[1]);
    int64_t start[2] = {0, 0}, count[2] = {dims[0], ndim == 2 ? dims[1] : 1};
    DAPT_CHECK(dapt_h5_read(f, name, DAPT_H5_F32, ndim, start, count, buf + t->offset));
    int64_t want;
    DAPT_CHECK(dapt_h5_attr_get_int64(f, name, "crc32", &want));
    uint32_t got = dapt_crc32(buf + t->offset, t->numel * sizeof(float));
    if ((int64_t)got != want)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: checksum mismatch (CRC-32 stored %08llx, computed %08lx): the file is corrupted",
                          f->path, name, (unsigned long long)want, (unsigned long)got);
    return DAPT_OK;
}

dapt_status dapt_checkpoint_load(MPI_Comm comm, const char *path, dapt_model *m, float *exp_avg,
                                 float *exp_avg_sq, dapt_ckpt_state *state, dapt_ckpt_load_fn load,
                                 void *load_ctx)
{
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(comm, path, &f));
    dapt_status st = DAPT_OK;
    char *format = NULL;
    int64_t seed = 0;
    if (!dapt_h5_attr_exists(&f, "/", "checkpoint_format"))
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: not a dapt checkpoint (no checkpoint_format attribute)", path);
    DAPT_TRY(dapt_h5_attr_get_string(&f, "/", "checkpoint_format", &format));
    if (strcmp(format, CKPT_FORMAT))
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: not a dapt checkpoint (format '%s', expected '%s')", path, format, CKPT_FORMAT);
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "step", &state->step));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "samples", &state->samples));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "adam_step", &state->adam_step));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "bad_run", &state->bad_run));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "seed", &seed));
    state->seed = (uint64_t)seed;
    for (size_t i = 0; i < m->table.count; i++) {
        const dapt_tensor *t = &m->table.tensors[i];
        DAPT_TRY(read_tensor(&f, "params", t, m->params));
        DAPT_TRY(read_tensor(&f, "optim/exp_avg", t, exp_avg));
        DAPT_TRY(read_tensor(&f, "optim/exp_avg_sq", t, exp_avg_sq));
    }
    if (load) DAPT_TRY(load(load_ctx, &f));
cleanup:
    free(format);
    dapt_h5_close(&f);
    /* Every rank read the same bytes; agree anyway (a rank's disk view may lag). */
    return agree_status(comm, st);
}

static int64_t read_latest(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    char line[256] = "";
    int64_t step = -1;
    if (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!parse_step_name(line, &step)) step = -1;
    }
    fclose(fp);
    return step;
}

dapt_status dapt_checkpoint_resume(MPI_Comm comm, const char *dir, dapt_model *m, float *exp_avg,
                                   float *exp_avg_sq, dapt_ckpt_state *state, dapt_ckpt_load_fn load,
                                   void *load_ctx, char *path, size_t path_len)
{
    /* Rank 0 decides the candidate order; everyone tries the same files. */
    int rank;
    MPI_Comm_rank(comm, &rank);
    int64_t *steps = NULL;
    size_t n = 0;
    int64_t latest = -1;
    dapt_status st = DAPT_OK;
    if (rank == 0) {
        st = dapt_checkpoint_list(dir, &steps, &n);
        latest = read_latest(dir);
    }
    DAPT_CHECK(agree_status(comm, st));
    long long nn = (long long)n;
    MPI_Bcast(&nn, 1, MPI_LONG_LONG, 0, comm);
    MPI_Bcast(&latest, 1, MPI_INT64_T, 0, comm);
    if (rank != 0 && nn > 0) {
        steps = malloc((size_t)nn * sizeof *steps);
        if (!steps) st = DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory listing checkpoints");
    }
    n = (size_t)nn;
    st = agree_status(comm, st);
    if (st != DAPT_OK) {
        free(steps);
        return st;
    }
    if (n) MPI_Bcast(steps, (int)n, MPI_INT64_T, 0, comm);
    if (n == 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: no checkpoint to resume from", dir);
    /* Candidates: `latest` first (it may be older than a newer complete file
     * written just before a crash; it is what the last run vouched for),
     * then every file newest first. */
    int64_t *order = malloc((n + 1) * sizeof *order);
    if (!order) {
        free(steps);
        return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory listing checkpoints");
    }
    size_t k = 0;
    if (latest >= 0) order[k++] = latest;
    for (size_t i = n; i-- > 0;)
        if (steps[i] != latest) order[k++] = steps[i];
    free(steps);
    for (size_t i = 0; i < k; i++) {
        dapt_checkpoint_path(dir, order[i], path, path_len);
        st = dapt_checkpoint_load(comm, path, m, exp_avg, exp_avg_sq, state, load, load_ctx);
        if (st == DAPT_OK) {
            if (i > 0) dapt_warn("resumed from the older checkpoint %s", path);
            free(order);
            return DAPT_OK;
        }
        dapt_warn("checkpoint %s is unusable, trying an older one: %s", path, dapt_error_message());
        dapt_error_clear();
    }
    free(order);
    return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: none of the %zu checkpoints loads (see the warnings above)", dir, n);
}
