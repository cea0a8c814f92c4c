/* Input sources for dapt prepare: scanning (size, sha256, gzip check),
 * byte-range loading on document boundaries, UTF-8 checking.
 *
 * The ownership rule that makes the output independent of the number of
 * ranks: a document belongs to the rank whose byte range holds its first
 * byte.  Deciding whether a position starts a document needs at most three
 * bytes before it (a blank line is "" or "\r"), so each rank reads from
 * s - 3 and runs forward until its last document is complete. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dapt/h5io.h"
#include "dapt/log.h"
#include "dapt/share.h"
#include "dapt/utf8.h"
#include "dapt/sha256.h"
#include "data_internal.h"

#define CHUNK (1u << 20)

/* ---- ranges --------------------------------------------------------------- */

void data_rank_range(int64_t total, int rank, int size, int64_t *s, int64_t *e)
{
    int64_t count = 0;
    dapt_share(total, rank, size, s, &count);
    *e = *s + count;
}

int64_t data_chunks(int64_t total_bytes, int size)
{
    /* 16 per rank, but none under 256 KiB (each costs an open and a seek). */
    int64_t n = (int64_t)size * 16, by_size = total_bytes / (256 << 10);
    if (n > by_size) n = by_size;
    return n < size ? size : n;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct reader {
    const char *path;
    FILE *fp;  /* plain input */
    gzFile gz; /* gzip input */
} reader;

static dapt_status rd_open(reader *r, const char *path, int gz, int64_t off)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    if (!gz) {
        r->fp = fopen(path, "rb");
        if (!r->fp) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        if (fseeko(r->fp, (off_t)off, SEEK_SET) != 0)
            return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot seek to byte %lld: %s", path, (long long)off,
                              strerror(errno));
        return DAPT_OK;
    }
    r->gz = gzopen(path, "rb");
    if (!r->gz) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(r->gz, CHUNK);
    /* gzip cannot be entered in the middle: inflate and discard. */
    if (off > 0 && gzseek(r->gz, (z_off_t)off, SEEK_SET) < 0) {
        int zerr = 0;
        const char *m = gzerror(r->gz, &zerr);
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: corrupt or truncated gzip stream before byte %lld (zlib: %s)",
                          path, (long long)off, m);
    }
    return DAPT_OK;
}

/* Reads up to want bytes; *got < want only at the end of the input. */
static dapt_status rd_read(reader *r, char *buf, size_t want, size_t *got)
{
    *got = 0;
    if (r->fp) {
        *got = fread(buf, 1, want, r->fp);
        if (*got < want && ferror(r->fp))
            return DAPT_ERROR(DAPT_ERR_IO, "%s: read error: %s", r->path, strerror(errno));
        return DAPT_OK;
    }
    while (*got < want) {
        unsigned n = (unsigned)(want - *got > CHUNK ? CHUNK : want - *got);
        int k = gzread(r->gz, buf + *got, n);
        if (k < 0 || (k == 0 && !gzeof(r->gz))) {
            int zerr = 0;
            const char *m = gzerror(r->gz, &zerr);
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: corrupt or truncated gzip stream (zlib: %s)", r->path, m);
        }
        if (k == 0) break;
        *got += (size_t)k;
    }
    if (*got < want) {
        /* At the end: zlib reports a stream cut short only here. */
        int zerr = 0;
        const char *m = gzerror(r->gz, &zerr);
        if (zerr != Z_OK && zerr != Z_STREAM_END)
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: corrupt or truncated gzip stream (zlib: %s)", r->path, m);
    }
    return DAPT_OK;
}

static void rd_close(reader *r)
{
    if (r->fp) fclose(r->fp);
    if (r->gz) gzclose(r->gz);
    r->fp = NULL;
    r->gz = NULL;
}

/* ---- scan --------------------------------------------------------------- */

typedef struct scan_rec {
    int code;
    int gz;
    int64_t size, raw_size;
    char sha256[65];
    char msg[1024];
} scan_rec;

static dapt_status scan_one(const char *path, scan_rec *rec)
{
    dapt_status st = DAPT_OK;
    unsigned char *buf = NULL;
    FILE *fp = NULL;
    reader rd = {0};
    struct stat sb;
    if (stat(path, &sb) != 0) DAPT_THROW(DAPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) DAPT_THROW(DAPT_ERR_IO, "%s: is a directory, not a text file", path);
    DAPT_TRY(dapt_alloc((void **)&buf, CHUNK, "input read buffer"));
    fp = fopen(path, "rb");
    if (!fp) DAPT_THROW(DAPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    dapt_sha256 h;
    dapt_sha256_init(&h);
    size_t n;
    int first = 1;
    while ((n = fread(buf, 1, CHUNK, fp)) > 0) {
        if (first && n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) rec->gz = 1;
        first = 0;
        dapt_sha256_update(&h, buf, n);
        rec->raw_size += (int64_t)n;
    }
    if (ferror(fp)) DAPT_THROW(DAPT_ERR_IO, "%s: read error: %s", path, strerror(errno));
    unsigned char dig[32];
    dapt_sha256_final(&h, dig);
    dapt_sha256_hex(dig, rec->sha256);
    rec->size = rec->raw_size;
    if (rec->gz) {
        DAPT_TRY(rd_open(&rd, path, 1, 0));
        rec->size = 0;
        size_t got;
        do {
            DAPT_TRY(rd_read(&rd, (char *)buf, CHUNK, &got));
            rec->size += (int64_t)got;
        } while (got == CHUNK);
    }
    if (rec->size == 0) DAPT_THROW(DAPT_ERR_FORMAT, "%s: empty input (no text)", path);
cleanup:
    rd_close(&rd);
    if (fp) fclose(fp);
    free(buf);
    return st;
}

dapt_status src_scan(MPI_Comm comm, const char *const *paths, size_t n, src_info *info)
{
    int rank = 0, size = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    scan_rec *rec = calloc(n ? n : 1, sizeof *rec);
    if (!rec) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory scanning inputs");
    /* Spread the hashing: largest input first to the least-loaded rank
     * (sizes on disk; every rank computes the same assignment). */
    int *owners = calloc(n ? n : 1, sizeof *owners);
    int64_t *raw = calloc(n ? n : 1, sizeof *raw), *load = calloc((size_t)size, sizeof *load);
    char *done = calloc(n ? n : 1, 1);
    if (!owners || !raw || !load || !done) {
        free(owners), free(raw), free(load), free(done), free(rec);
        return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory scanning inputs");
    }
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        raw[i] = stat(paths[i], &sb) == 0 ? (int64_t)sb.st_size : 0;
    }
    for (size_t k = 0; k < n; k++) {
        size_t big = 0;
        int found = 0;
        for (size_t i = 0; i < n; i++)
            if (!done[i] && (!found || raw[i] > raw[big])) big = i, found = 1;
        int least = 0;
        for (int r = 1; r < size; r++)
            if (load[r] < load[least]) least = r;
        done[big] = 1;
        owners[big] = least;
        load[least] += raw[big] + 1;
    }
    free(raw), free(load), free(done);
    /* Every rank hashes all of its inputs first and only then the results
     * are shared: a broadcast per input between scans would make each rank
     * wait for the previous owner, serialising the work. */
    for (size_t i = 0; i < n; i++) {
        if (owners[i] != rank) continue;
        dapt_status st = scan_one(paths[i], &rec[i]);
        rec[i].code = (int)st;
        if (st != DAPT_OK) snprintf(rec[i].msg, sizeof rec[i].msg, "%s", dapt_error_message());
    }
    /* Every rank learns every record; the owner of the first bad input (in
     * input order) is the one rank that reports, and dapt_status_agree
     * gives its message to the others. */
    dapt_status st = DAPT_OK;
    size_t first_bad = n;
    for (size_t i = 0; i < n && st == DAPT_OK; i++) {
        st = DAPT_MPI(MPI_Bcast(&rec[i], (int)sizeof rec[i], MPI_BYTE, owners[i], comm));
        if (rec[i].code != DAPT_OK && first_bad == n) first_bad = i;
        info[i].size = rec[i].size;
        info[i].raw_size = rec[i].raw_size;
        info[i].gz = rec[i].gz;
        memcpy(info[i].sha256, rec[i].sha256, sizeof info[i].sha256);
    }
    if (st == DAPT_OK && first_bad < n && owners[first_bad] == rank) {
        st = (dapt_status)rec[first_bad].code;
        /* A later scan on this rank may have replaced the record. */
        if (strcmp(dapt_error_message(), rec[first_bad].msg)) DAPT_ERROR(st, "%s", rec[first_bad].msg);
    }
    free(rec);
    free(owners);
    return dapt_status_agree(comm, st);
}

/* ---- byte ranges on document boundaries -------------------------------- */

typedef struct window {
    reader rd;
    char *buf;
    size_t cap;
    int64_t lo, hi, size; /* buf holds file bytes [lo, hi) of size */
} window;

/* Makes sure byte x (< size) is in the window. */
static dapt_status win_ensure(window *w, int64_t x)
{
    while (x >= w->hi) {
        size_t want = CHUNK;
        if ((int64_t)want > w->size - w->hi) want = (size_t)(w->size - w->hi);
        if (want == 0) return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: read past the end", w->rd.path);
        size_t used = (size_t)(w->hi - w->lo);
        if (used + want > w->cap) {
            size_t ncap = w->cap ? w->cap : CHUNK;
            while (ncap < used + want) ncap *= 2;
            char *nb = realloc(w->buf, ncap);
            if (!nb) return DAPT_ERROR(DAPT_ERR_NOMEM, "%s: out of memory holding %zu bytes", w->rd.path, ncap);
            w->buf = nb;
            w->cap = ncap;
        }
        size_t got = 0;
        DAPT_CHECK(rd_read(&w->rd, w->buf + used, want, &got));
        if (got < want)
            return DAPT_ERROR(DAPT_ERR_IO, "%s: input shrank while reading (%lld bytes expected)", w->rd.path,
                              (long long)w->size);
        w->hi += (int64_t)got;
    }
    return DAPT_OK;
}

static inline char win_at(const window *w, int64_t x) { return w->buf[x - w->lo]; }

/* Offset just past the '\n' that ends the line holding x, or size. */
static dapt_status win_line_end(window *w, int64_t x, int64_t *end)
{
    while (x < w->size) {
        DAPT_CHECK(win_ensure(w, x));
        const char *p = w->buf + (x - w->lo);
        const char *nl = memchr(p, '\n', (size_t)(w->hi - x));
        if (nl) {
            *end = x + (nl - p) + 1;
            return DAPT_OK;
        }
        x = w->hi;
    }
    *end = w->size;
    return DAPT_OK;
}

void src_part_free(src_part *part)
{
    free(part->text);
    memset(part, 0, sizeof *part);
}

dapt_status src_load(const char *path, const src_info *info, dapt_doc_sep sep, int64_t s, int64_t e,
                     src_part *part)
{
    dapt_status st = DAPT_OK;
    memset(part, 0, sizeof *part);
    if (e > info->size) e = info->size;
    if (s >= e) return DAPT_OK;
    window w = {0};
    w.size = info->size;
    w.lo = w.hi = s >= 3 ? s - 3 : 0;
    DAPT_TRY(rd_open(&w.rd, path, info->gz, w.lo));
    /* First line start L >= s. */
    int64_t L = s;
    if (s > 0) {
        DAPT_TRY(win_ensure(&w, s - 1));
        if (win_at(&w, s - 1) != '\n') DAPT_TRY(win_line_end(&w, s, &L));
    }
    int64_t a = -1, z = -1;
    if (sep == DAPT_DOC_LINE) {
        if (L < e && L < w.size) {
            a = L;
            DAPT_TRY(win_line_end(&w, e - 1 > L ? e - 1 : L, &z));
        }
    } else {
        /* Is the line before L empty ("" or "\r")?  Needs bytes L-3..L-1. */
        int prev_empty = 1;
        if (L > 0 && L < w.size) {
            int64_t b = L - 2; /* last byte of the previous line's content, if any */
            if (L - 1 == 0 || win_at(&w, b) == '\n')
                prev_empty = 1;
            else if (win_at(&w, b) == '\r' && (b == 0 || win_at(&w, b - 1) == '\n'))
                prev_empty = 1;
            else
                prev_empty = 0;
        }
        int in_doc = 0;
        int64_t p = L;
        while (p < w.size) {
            if (!in_doc && p >= e) break;
            int64_t next;
            DAPT_TRY(win_line_end(&w, p, &next));
            int64_t content = next - p - (win_at(&w, next - 1) == '\n' ? 1 : 0);
            int empty = content == 0 || (content == 1 && win_at(&w, p) == '\r');
            if (empty) {
                if (in_doc) z = p;
                in_doc = 0;
                prev_empty = 1;
            } else {
                if (!in_doc && prev_empty) {
                    if (p >= e) break;
                    if (a < 0) a = p;
                    in_doc = 1;
                }
                prev_empty = 0;
            }
            p = next;
        }
        if (in_doc) z = w.size;
    }
    if (a >= 0 && z > a) {
        DAPT_TRY(win_ensure(&w, z - 1));
        size_t len = (size_t)(z - a);
        DAPT_TRY(dapt_alloc((void **)&part->text, len + 1, "document text"));
        memcpy(part->text, w.buf + (a - w.lo), len);
        part->text[len] = '\0';
        part->len = len;
        part->base = a;
    }
cleanup:
    rd_close(&w.rd);
    free(w.buf);
    if (st != DAPT_OK) src_part_free(part);
    return st;
}

int src_next_doc(const src_part *part, dapt_doc_sep sep, size_t *pos, const char **doc, size_t *len)
{
    const char *t = part->text;
    size_t n = part->len, p = *pos;
    for (;;) {
        if (p >= n) {
            *pos = p;
            return 0;
        }
        const char *nl = memchr(t + p, '\n', n - p);
        size_t end = nl ? (size_t)(nl - t) : n; /* end of line content */
        size_t next = nl ? end + 1 : n;
        size_t cend = end > p && t[end - 1] == '\r' ? end - 1 : end;
        if (cend == p) { /* empty line: a separator, never a document */
            p = next;
            continue;
        }
        if (sep == DAPT_DOC_LINE) {
            *doc = t + p;
            *len = cend - p;
            *pos = next;
            return 1;
        }
        /* Blank-separated: extend over non-empty lines. */
        size_t start = p, last_cend = cend;
        p = next;
        while (p < n) {
            nl = memchr(t + p, '\n', n - p);
            end = nl ? (size_t)(nl - t) : n;
            next = nl ? end + 1 : n;
            cend = end > p && t[end - 1] == '\r' ? end - 1 : end;
            if (cend == p) break;
            last_cend = cend;
            p = next;
        }
        *doc = t + start;
        *len = last_cend - start;
        *pos = p;
        return 1;
    }
}

/* ---- checks ------------------------------------------------------------- */

int src_check_text(const char *text, size_t len, size_t *bad, const char **why)
{
    /* NUL is valid UTF-8 (one byte), so the first problem is whichever of
     * the first NUL and the first invalid sequence comes first. */
    const char *nul = len ? memchr(text, '\0', len) : NULL; /* an empty share may be NULL */
    size_t at_nul = nul ? (size_t)(nul - text) : len, at_bad = dapt_utf8_validate(text, at_nul);
    if (at_bad < at_nul) {
        *bad = at_bad;
        dapt_utf8_invalid((const unsigned char *)text + at_bad, len - at_bad, why);
        return 0;
    }
    if (nul) {
        *bad = at_nul;
        *why = "NUL byte (binary data?)";
        return 0;
    }
    return 1;
}

int64_t src_line_of(const char *path, int64_t off)
{
    gzFile g = gzopen(path, "rb");
    if (!g) return 0;
    char *buf = malloc(CHUNK);
    int64_t line = 1, pos = 0;
    while (buf && pos < off) {
        unsigned want = (unsigned)(off - pos < (int64_t)CHUNK ? off - pos : CHUNK);
        int k = gzread(g, buf, want);
        if (k <= 0) break;
        for (int i = 0; i < k; i++) line += buf[i] == '\n';
        pos += k;
    }
    free(buf);
    gzclose(g);
    return line;
}

/* ---- writing ------------------------------------------------------------ */

dapt_status data_write_id_blocks(dapt_h5file *f, const char *name, int id_bytes, int64_t n, size_t nb,
                                 const int64_t *starts, const int64_t *counts, const int32_t *ids)
{
    const dapt_h5_type type = id_bytes == 1 ? DAPT_H5_U8 : id_bytes == 2 ? DAPT_H5_U16 : DAPT_H5_U32;
    int64_t count = 0;
    for (size_t k = 0; k < nb; k++) count += counts[k];
    void *narrow = NULL;
    if (count > 0) {
        DAPT_CHECK(dapt_alloc(&narrow, (size_t)count * (size_t)id_bytes, "narrowed token ids"));
        if (id_bytes == 1)
            for (int64_t i = 0; i < count; i++) ((uint8_t *)narrow)[i] = (uint8_t)ids[i];
        else if (id_bytes == 2)
            for (int64_t i = 0; i < count; i++) ((uint16_t *)narrow)[i] = (uint16_t)ids[i];
        else
            for (int64_t i = 0; i < count; i++) ((uint32_t *)narrow)[i] = (uint32_t)ids[i];
    }
    /* A few large contiguous slabs per rank: independent MPI-IO writes them
     * straight; collective buffering would only add a shuffle. */
    dapt_status st = dapt_h5_write_blocks(f, name, type, n, nb, starts, counts, narrow, DAPT_H5_INDEPENDENT);
    free(narrow);
    return st;
}

dapt_status data_write_ids(dapt_h5file *f, const char *name, int id_bytes, int64_t n, int64_t start,
                           int64_t count, const int32_t *ids)
{
    return data_write_id_blocks(f, name, id_bytes, n, 1, &start, &count, ids);
}

int dapt_corpus_id_bytes(size_t vocab_size)
{
    if (vocab_size <= 256) return 1;
    if (vocab_size <= 65536) return 2;
    return 4;
}
