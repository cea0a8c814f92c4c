/* The training loop's parts: MLM masking, sequences and sample order,
 * checkpoints (round trip, retention, corruption and fallback).  Runs on
 * 1 rank and under mpirun (tests/train/loop_ranks.test). */
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corpus_fixture.h"
#include "dapt/batches.h"
#include "dapt/checkpoint.h"
#include "dapt/fsio.h"
#include "dapt/mlm.h"
#include "dapt/model.h"
#include "harness.h"

/* A directory shared by all ranks (rank 0's pid). */
static const char *scratch(void) { return dapt_test_shared_dir("loop"); }

static dapt_mlm_spec test_spec(double p)
{
    dapt_mlm_spec s;
    memset(&s, 0, sizeof s);
    s.probability = p;
    s.mask_id = 4;
    s.vocab_size = 64;
    for (int32_t id = 0; id < 5; id++) dapt_mlm_spec_add_special(&s, id);
    return s;
}

/* 5-sigma bound of a binomial proportion: fails by chance with p < 1e-6. */
static int near(double count, double n, double p)
{
    return fabs(count / n - p) < 5.0 * sqrt(p * (1 - p) / n);
}

static void test_mask_statistics(void)
{
    const dapt_mlm_spec spec = test_spec(0.15);
    CU_ASSERT_EQUAL(dapt_mlm_spec_check(&spec), DAPT_OK);
    enum { N = 3000, L = 64 };
    static int32_t ids[L], orig[L], labels[L], att[L];
    double eligible = 0, selected = 0, masked = 0, kept = 0, other = 0;
    int seen[64] = {0}, bad_special = 0, bad_label = 0;
    for (int s = 0; s < N; s++) {
        for (int p = 0; p < L; p++) {
            orig[p] = 5 + (s * 7 + p * 3) % 59;
            att[p] = p < L - 6; /* last 6 positions are padding */
        }
        orig[0] = 2;  /* [CLS] */
        orig[30] = 3; /* [SEP] */
        orig[31] = 1; /* [UNK] */
        for (int p = L - 6; p < L; p++) orig[p] = 0;
        memcpy(ids, orig, sizeof ids);
        int64_t nsel = 0;
        dapt_mlm_mask(&spec, 42, 3, (uint64_t)s, ids, att, L, labels, &nsel);
        int64_t count = 0;
        for (int p = 0; p < L; p++) {
            int special = orig[p] < 5 || !att[p];
            if (!special) eligible++;
            if (labels[p] == DAPT_IGNORE_LABEL) {
                if (ids[p] != orig[p]) bad_label++;
                continue;
            }
            count++;
            if (special) bad_special++;
            if (labels[p] != orig[p]) bad_label++;
            selected++;
            if (ids[p] == 4) masked++;
            else if (ids[p] == orig[p]) kept++;
            else {
                other++;
                if (ids[p] >= 0 && ids[p] < 64) seen[ids[p]]++;
                else bad_label++;
            }
        }
        CU_ASSERT_EQUAL(count, nsel);
    }
    CU_ASSERT_EQUAL(bad_special, 0);
    CU_ASSERT_EQUAL(bad_label, 0);
    CU_ASSERT(near(selected, eligible, 0.15));
    /* A random replacement can draw [MASK] or the original id (1/64 each). */
    CU_ASSERT(near(masked, selected, 0.8 + 0.1 / 64));
    CU_ASSERT(near(kept, selected, 0.1 + 0.1 / 64));
    CU_ASSERT(near(other, selected, 0.1 * 62 / 64));
    int distinct = 0;
    for (int i = 0; i < 64; i++) distinct += seen[i] > 0;
    CU_ASSERT(distinct >= 60); /* replacements span the whole vocabulary */
}

static void test_mask_determinism(void)
{
    const dapt_mlm_spec spec = test_spec(0.3);
    enum { L = 128 };
    int32_t a[L], b[L], c[L], la[L], lb[L], lc[L];
    for (int p = 0; p < L; p++) a[p] = b[p] = c[p] = 5 + p % 59;
    dapt_mlm_mask(&spec, 9, 5, 1000, a, NULL, L, la, NULL);
    dapt_mlm_mask(&spec, 9, 5, 1000, b, NULL, L, lb, NULL);
    CU_ASSERT(!memcmp(a, b, sizeof a) && !memcmp(la, lb, sizeof la));
    dapt_mlm_mask(&spec, 9, 6, 1000, c, NULL, L, lc, NULL); /* another step: other masks */
    CU_ASSERT(memcmp(la, lc, sizeof la) != 0);
    for (int p = 0; p < L; p++) c[p] = 5 + p % 59;
    dapt_mlm_mask(&spec, 9, 5, 1001, c, NULL, L, lc, NULL); /* another sample */
    CU_ASSERT(memcmp(la, lc, sizeof la) != 0);
    /* p = 0 selects nothing, p = 1 everything eligible. */
    dapt_mlm_spec none = test_spec(0.0), all = test_spec(1.0);
    int64_t n;
    for (int p = 0; p < L; p++) c[p] = 5 + p % 59;
    dapt_mlm_mask(&none, 1, 1, 1, c, NULL, L, lc, &n);
    CU_ASSERT_EQUAL(n, 0);
    dapt_mlm_mask(&all, 1, 1, 1, c, NULL, L, lc, &n);
    CU_ASSERT_EQUAL(n, L);
    dapt_mlm_spec badmask = test_spec(0.15);
    badmask.mask_id = 64;
    CU_ASSERT_EQUAL(dapt_mlm_spec_check(&badmask), DAPT_ERR_CONFIG);
    dapt_error_clear();
}

static void corpus_path(char *out, size_t len) { snprintf(out, len, "%s/corpus.h5", scratch()); }

static void write_corpus(int64_t docs)
{
    char path[4200];
    corpus_path(path, sizeof path);
    CU_ASSERT_EQUAL_FATAL(fixture_write_corpus(MPI_COMM_WORLD, path, docs, 7), DAPT_OK);
}

/* The reference: which documents are held out is tested by its rate; the
 * text of each sequence against a brute-force concatenation. */
static void test_concat_packing(void)
{
    const int64_t docs = 300, L = 24;
    write_corpus(docs);
    char path[4200];
    corpus_path(path, sizeof path);
    dapt_seq_spec spec = {L, DAPT_PACK_CONCAT, 0.25, 5, 2, 3, 0};
    dapt_sequences *s = NULL;
    CU_ASSERT_EQUAL_FATAL(dapt_sequences_open(path, &spec, &s), DAPT_OK);
    int64_t nonempty = 0;
    for (int64_t d = 0; d < docs; d++) nonempty += fixture_doc_len(7, d) > 0;
    int64_t ntr = dapt_sequences_docs(s, DAPT_SPLIT_TRAIN), nev = dapt_sequences_docs(s, DAPT_SPLIT_EVAL);
    CU_ASSERT_EQUAL(ntr + nev, nonempty);
    CU_ASSERT(near((double)nev, (double)nonempty, 0.25));
    /* Rebuild both splits' streams from the fixture's own generator, by
     * matching documents in file order against the split's first tokens. */
    for (int split = 0; split < 2; split++) {
        int64_t n = dapt_sequences_count(s, (dapt_split)split);
        int32_t *ids = malloc((size_t)(n * L) * sizeof *ids), *att = malloc((size_t)(n * L) * sizeof *att);
        int64_t *idx = malloc((size_t)n * sizeof *idx);
        /* Read in reverse order, in one call: the union read must place every piece. */
        for (int64_t i = 0; i < n; i++) idx[i] = n - 1 - i;
        CU_ASSERT_EQUAL_FATAL(dapt_sequences_read(s, (dapt_split)split, idx, n, ids, att), DAPT_OK);
        /* Stream in sequence order. */
        int32_t *stream = malloc((size_t)(n * L) * sizeof *stream);
        for (int64_t i = 0; i < n; i++) memcpy(stream + i * L, ids + (n - 1 - i) * L, (size_t)L * sizeof *ids);
        int ok_att = 1;
        for (int64_t i = 0; i < n * L; i++) ok_att &= att[i] == 1;
        CU_ASSERT(ok_att);
        /* Walk the stream: [CLS] doc [SEP] for a subsequence of the documents
         * in file order, every non-empty document in exactly one split. */
        int64_t pos = 0, d = 0, matched = 0;
        int ok = 1;
        while (pos < n * L && ok) {
            while (d < docs && fixture_doc_len(7, d) == 0) d++;
            if (d >= docs) {
                ok = 0;
                break;
            }
            int64_t len = fixture_doc_len(7, d);
            int match = stream[pos] == 2;
            for (int64_t i = 0; match && i < len && pos + 1 + i < n * L; i++)
                match = stream[pos + 1 + i] == fixture_token(7, d, i);
            if (match && pos + 1 + len < n * L) match = stream[pos + 1 + len] == 3;
            if (match) {
                pos += len + 2;
                matched++;
            }
            d++;
        }
        CU_ASSERT(ok);
        CU_ASSERT(pos >= n * L);
        CU_ASSERT(matched > 0);
        free(ids);
        free(att);
        free(idx);
        free(stream);
    }
    dapt_sequences_close(s);
}

static void test_document_packing(void)
{
    const int64_t docs = 80, L = 16;
    write_corpus(docs);
    char path[4200];
    corpus_path(path, sizeof path);
    dapt_seq_spec spec = {L, DAPT_PACK_DOCUMENT, 0.0, 5, 2, 3, 0};
    dapt_sequences *s = NULL;
    CU_ASSERT_EQUAL_FATAL(dapt_sequences_open(path, &spec, &s), DAPT_OK);
    int64_t n = dapt_sequences_count(s, DAPT_SPLIT_TRAIN);
    CU_ASSERT_EQUAL(dapt_sequences_count(s, DAPT_SPLIT_EVAL), 0);
    int32_t ids[80 * 16], att[80 * 16];
    int64_t idx[80];
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    CU_ASSERT_EQUAL_FATAL(dapt_sequences_read(s, DAPT_SPLIT_TRAIN, idx, n, ids, att), DAPT_OK);
    int64_t k = 0, bad = 0;
    for (int64_t d = 0; d < docs; d++) {
        int64_t len = fixture_doc_len(7, d);
        if (len == 0) continue;
        int64_t keep = len < L - 2 ? len : L - 2;
        const int32_t *row = ids + k * L, *a = att + k * L;
        bad += row[0] != 2 || row[keep + 1] != 3 || !a[keep + 1];
        for (int64_t i = 0; i < keep; i++) bad += row[1 + i] != fixture_token(7, d, i) || !a[1 + i];
        for (int64_t p = keep + 2; p < L; p++) bad += row[p] != 0 || a[p] != 0;
        k++;
    }
    CU_ASSERT_EQUAL(k, n);
    CU_ASSERT_EQUAL(bad, 0);
    dapt_sequences_close(s);
}

static void test_bad_corpus(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/missing.h5", scratch());
    dapt_seq_spec spec = {16, DAPT_PACK_CONCAT, 0.0, 5, 2, 3, 0};
    dapt_sequences *s = NULL;
    CU_ASSERT_NOT_EQUAL(dapt_sequences_open(path, &spec, &s), DAPT_OK);
    CU_ASSERT(strstr(dapt_error_message(), "missing.h5") != NULL);
    dapt_error_clear();
}

static void test_order(void)
{
    enum { N = 37 };
    dapt_order a, b;
    CU_ASSERT_EQUAL_FATAL(dapt_order_init(&a, 3, N), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_order_init(&b, 3, N), DAPT_OK);
    int64_t first[N];
    int same_epoch = 1, differs = 0;
    for (int e = 0; e < 3; e++) {
        int seen[N] = {0};
        for (int i = 0; i < N; i++) {
            int64_t ep, k = dapt_order_at(&a, (uint64_t)(e * N + i), &ep);
            same_epoch &= ep == e;
            if (k >= 0 && k < N) seen[k]++;
            if (e == 0) first[i] = k;
            else differs += first[i] != k;
        }
        int perm = 1;
        for (int i = 0; i < N; i++) perm &= seen[i] == 1;
        CU_ASSERT(perm);
    }
    CU_ASSERT(same_epoch);
    CU_ASSERT(differs > 0);
    /* Random access in any order gives the same answer (ranks jump around). */
    int agree = 1;
    for (int g = 3 * N - 1; g >= 0; g -= 5) agree &= dapt_order_at(&b, (uint64_t)g, NULL) == dapt_order_at(&a, (uint64_t)g, NULL);
    CU_ASSERT(agree);
    dapt_order_free(&a);
    dapt_order_free(&b);
    /* Shares tile [0, n). */
    for (int R = 1; R <= 5; R++) {
        int64_t next = 0;
        for (int r = 0; r < R; r++) {
            int64_t b0, c;
            dapt_share(11, r, R, &b0, &c);
            CU_ASSERT_EQUAL(b0, next);
            next = b0 + c;
        }
        CU_ASSERT_EQUAL(next, 11);
    }
}

/* ---- checkpoints ---- */

static void tiny_model(dapt_model *m, uint64_t seed)
{
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    cfg.model.vocab_size = 40;
    cfg.model.hidden = 16;
    cfg.model.layers = 2;
    cfg.model.heads = 2;
    cfg.model.intermediate = 24;
    cfg.model.max_position = 32;
    dapt_model_config mc;
    CU_ASSERT_EQUAL_FATAL(dapt_model_config_from_run(&cfg, &mc), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_model_create(&mc, m), DAPT_OK);
    dapt_model_init_random(m, seed);
}

static void fill(float *x, size_t n, float base)
{
    for (size_t i = 0; i < n; i++) x[i] = base + (float)i * 1e-3f;
}

/* Offset of a dataset's bytes in the file (contiguous layout). */
static long long data_offset(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    haddr_t off = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    return off == HADDR_UNDEF ? -1 : (long long)off;
}

static void flip_byte(const char *path, long long offset)
{
    int fd = open(path, O_RDWR);
    unsigned char c = 0;
    CU_ASSERT_EQUAL(pread(fd, &c, 1, offset), 1);
    c ^= 0x5a;
    CU_ASSERT_EQUAL(pwrite(fd, &c, 1, offset), 1);
    close(fd);
}

static void test_checkpoints(void)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ckpt", scratch());
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    dapt_model a, b;
    tiny_model(&a, 1);
    tiny_model(&b, 2);
    size_t n = a.table.total;
    float *m1 = calloc(n, sizeof(float)), *v1 = calloc(n, sizeof(float));
    float *m2 = calloc(n, sizeof(float)), *v2 = calloc(n, sizeof(float));
    /* Four checkpoints, keep 2: the parameters differ per step. */
    for (int64_t step = 1; step <= 4; step++) {
        fill(m1, n, (float)step);
        fill(v1, n, (float)step * 2);
        a.params[0] = (float)step;
        dapt_ckpt_state st = {step * 10, step * 80, step, 0, 1234};
        CU_ASSERT_EQUAL_FATAL(dapt_checkpoint_save(MPI_COMM_WORLD, dir, &cfg, &a, NULL, m1, v1, &st, 2, NULL, NULL), DAPT_OK);
    }
    int64_t *steps = NULL;
    size_t count = 0;
    CU_ASSERT_EQUAL(dapt_checkpoint_list(dir, &steps, &count), DAPT_OK);
    CU_ASSERT_EQUAL(count, 2);
    if (count == 2) CU_ASSERT(steps[0] == 30 && steps[1] == 40);
    free(steps);
    char path[4300];
    dapt_ckpt_state got;
    CU_ASSERT_EQUAL_FATAL(dapt_checkpoint_resume(MPI_COMM_WORLD, dir, &b, m2, v2, &got, NULL, NULL, path, sizeof path), DAPT_OK);
    CU_ASSERT(strstr(path, "step-00000040.h5") != NULL);
    CU_ASSERT(got.step == 40 && got.samples == 320 && got.adam_step == 4 && got.seed == 1234);
    /* Tensor by tensor: the alignment padding between tensors is not stored. */
    int same = 1;
    for (size_t i = 0; i < a.table.count; i++) {
        const dapt_tensor *t = &a.table.tensors[i];
        same &= !memcmp(a.params + t->offset, b.params + t->offset, t->numel * sizeof(float));
        same &= !memcmp(m1 + t->offset, m2 + t->offset, t->numel * sizeof(float));
        same &= !memcmp(v1 + t->offset, v2 + t->offset, t->numel * sizeof(float));
    }
    CU_ASSERT(same);

    /* Corrupt one byte of a parameter in the newest: checksum mismatch, the
     * previous checkpoint is used. */
    char p40[4300], p30[4300];
    dapt_checkpoint_path(dir, 40, p40, sizeof p40);
    dapt_checkpoint_path(dir, 30, p30, sizeof p30);
    if (rank == 0) {
        long long off = data_offset(p40, "params/layer.1.ffn.in.weight");
        CU_ASSERT(off > 0);
        flip_byte(p40, off + 37);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(dapt_checkpoint_load(MPI_COMM_WORLD, p40, &b, m2, v2, &got, NULL, NULL), DAPT_ERR_FORMAT);
    CU_ASSERT(strstr(dapt_error_message(), "checksum mismatch") != NULL);
    CU_ASSERT(strstr(dapt_error_message(), "layer.1.ffn.in.weight") != NULL);
    dapt_error_clear();
    CU_ASSERT_EQUAL(dapt_checkpoint_resume(MPI_COMM_WORLD, dir, &b, m2, v2, &got, NULL, NULL, path, sizeof path), DAPT_OK);
    CU_ASSERT(strstr(path, "step-00000030.h5") != NULL);
    CU_ASSERT_EQUAL(got.step, 30);
    CU_ASSERT_EQUAL(b.params[0], 3.0f);

    /* Truncate the older one too: an HDF5 error, and nothing left to load. */
    if (rank == 0) {
        struct stat sb;
        stat(p30, &sb);
        CU_ASSERT_EQUAL(truncate(p30, sb.st_size / 2), 0);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    dapt_status st = dapt_checkpoint_load(MPI_COMM_WORLD, p30, &b, m2, v2, &got, NULL, NULL);
    CU_ASSERT(st == DAPT_ERR_FORMAT || st == DAPT_ERR_HDF5);
    CU_ASSERT(strstr(dapt_error_message(), "step-00000030.h5") != NULL);
    dapt_error_clear();
    CU_ASSERT_EQUAL(dapt_checkpoint_resume(MPI_COMM_WORLD, dir, &b, m2, v2, &got, NULL, NULL, path, sizeof path), DAPT_ERR_FORMAT);
    dapt_error_clear();

    /* A model of another shape is refused with the dataset named. */
    fill(m1, n, 1.0f);
    dapt_ckpt_state st5 = {50, 0, 5, 0, 1};
    CU_ASSERT_EQUAL_FATAL(dapt_checkpoint_save(MPI_COMM_WORLD, dir, &cfg, &a, NULL, m1, v1, &st5, 2, NULL, NULL), DAPT_OK);
    dapt_model c;
    dapt_config cfg2;
    dapt_config_defaults(&cfg2);
    cfg2.model.vocab_size = 41;
    cfg2.model.hidden = 16;
    cfg2.model.layers = 2;
    cfg2.model.heads = 2;
    cfg2.model.intermediate = 24;
    cfg2.model.max_position = 32;
    dapt_model_config mc2;
    CU_ASSERT_EQUAL_FATAL(dapt_model_config_from_run(&cfg2, &mc2), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_model_create(&mc2, &c), DAPT_OK);
    float *m3 = calloc(c.table.total, sizeof(float)), *v3 = calloc(c.table.total, sizeof(float));
    char p50[4300];
    dapt_checkpoint_path(dir, 50, p50, sizeof p50);
    CU_ASSERT_EQUAL(dapt_checkpoint_load(MPI_COMM_WORLD, p50, &c, m3, v3, &got, NULL, NULL), DAPT_ERR_FORMAT);
    CU_ASSERT(strstr(dapt_error_message(), "embeddings.word") != NULL);
    dapt_error_clear();
    free(m3);
    free(v3);
    dapt_model_free(&c);
    dapt_model_free(&a);
    dapt_model_free(&b);
    free(m1);
    free(v1);
    free(m2);
    free(v2);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) dapt_fs_remove_tree(scratch());
}

static void test_crc32(void)
{
    /* The standard check value of CRC-32 (IEEE 802.3). */
    CU_ASSERT_EQUAL(dapt_crc32("123456789", 9), 0xCBF43926u);
    CU_ASSERT_EQUAL(dapt_crc32("", 0), 0u);
}

DAPT_TEST_MAIN("loop",
               {"MLM masking: rates, 80/10/10, specials and padding never masked", test_mask_statistics},
               {"MLM masking: keyed by (seed, step, sample), p = 0 and 1", test_mask_determinism},
               {"concat packing: [CLS] doc [SEP] streams cut into blocks, split by document", test_concat_packing},
               {"document packing: truncated and padded", test_document_packing},
               {"missing corpus named in the error", test_bad_corpus},
               {"sample order: per-epoch permutations, random access, shares", test_order},
               {"CRC-32 check value", test_crc32},
               {"checkpoints: round trip, retention, corruption and truncation fall back", test_checkpoints})
