/* The self-describing root of every dapt analyze output file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dapt/analysis.h"
#include "dapt/sha256.h"

/* "sha256  bytes" of a file, on the calling rank. */
static dapt_status file_checksum(const char *path, char hex[65], long long *bytes)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open to checksum it", path);
    dapt_sha256 s;
    dapt_sha256_init(&s);
    static unsigned char buf[1 << 20];
    size_t n;
    *bytes = 0;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) {
        dapt_sha256_update(&s, buf, n);
        *bytes += (long long)n;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) return DAPT_ERROR(DAPT_ERR_IO, "%s: read error while checksumming", path);
    unsigned char digest[32];
    dapt_sha256_final(&s, digest);
    dapt_sha256_hex(digest, hex);
    return DAPT_OK;
}

/* One "role  sha256  bytes  path" line per input, made on rank 0 and
 * broadcast. */
static dapt_status inputs_text(const dapt_pgrid *g, const dapt_analysis_input *in, size_t n, char **out)
{
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) cap += strlen(in[i].role) + strlen(in[i].path) + 100;
    char *t = NULL;
    dapt_status st = dapt_calloc((void **)&t, cap, 1, "inputs attribute");
    if (st == DAPT_OK && g->rank == 0) {
        size_t used = 0;
        for (size_t i = 0; i < n && st == DAPT_OK; i++) {
            char hex[65];
            long long bytes = 0;
            st = file_checksum(in[i].path, hex, &bytes);
            if (st == DAPT_OK)
                used += (size_t)snprintf(t + used, cap - used, "%s  %s  %lld  %s\n", in[i].role, hex, bytes, in[i].path);
        }
    }
    st = dapt_status_agree(g->comm, st);
    if (st == DAPT_OK) st = DAPT_MPI(MPI_Bcast(t, (int)cap, MPI_CHAR, 0, g->comm));
    if (st != DAPT_OK) {
        free(t);
        return st;
    }
    *out = t;
    return DAPT_OK;
}

dapt_status dapt_analysis_create(const dapt_pgrid *g, const char *path, int force, const dapt_config *cfg,
                                 const char *analysis, const char *command, const dapt_analysis_input *inputs,
                                 size_t ninputs, int block, dapt_h5file *f)
{
    char *text = NULL;
    DAPT_CHECK(inputs_text(g, inputs, ninputs, &text));
    dapt_status st = dapt_h5_create(g->comm, path, force, cfg, f);
    if (st != DAPT_OK) {
        free(text);
        return st;
    }
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "format", "dapt-analysis"));
    DAPT_TRY(dapt_h5_attr_set_int64(f, "/", "format_version", 1));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "analysis", analysis));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "command", command));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "inputs", text));
    DAPT_TRY(dapt_h5_attr_set_int64(f, "/", "ranks", g->size));
    DAPT_TRY(dapt_h5_attr_set_int64(f, "/", "grid_rows", g->nprow));
    DAPT_TRY(dapt_h5_attr_set_int64(f, "/", "grid_cols", g->npcol));
    DAPT_TRY(dapt_h5_attr_set_int64(f, "/", "block_size", block));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "dapt_version", PACKAGE_VERSION));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "scalapack_version", DAPT_SCALAPACK_VERSION));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "precision", "float64"));
cleanup:
    free(text);
    if (st != DAPT_OK) dapt_h5_abort(f);
    return st;
}
