/* Set-up shared by the harnesses (fuzz_common.h). */
#include "fuzz_common.h"

#include <mpi.h>
#include <sanitizer/lsan_interface.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/config.h"
#include "dapt/fsio.h"
#include "dapt/h5io.h"
#include "dapt/log.h"
#include "dapt/tokenizer.h"

/* Leaks are findings only per input: libFuzzer checks after each input
 * whose mallocs outnumber its frees.  At exit, Open MPI's and HDF5's
 * library-lifetime allocations (some in components already unloaded, so
 * no suppression can name them) would bury dapt's, as in the sanitizer
 * run of the suite (docs/development.md). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "leak_check_at_exit=0"; }
/* UBSan's reports carry the stack, as ASan's do (triage.sh reads it). */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "print_stacktrace=1"; }
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libmpi.so\nleak:libopen-pal.so\nleak:libopen-rte.so\nleak:libhwloc.so\nleak:libpmix.so\n"
           "leak:libhdf5_openmpi.so\n";
}

static char scratch[4096];
static char path_buf[4200], src_buf[4200];

void fuzz_fail(const char *what, dapt_status st)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, st == DAPT_OK ? "failed" : dapt_error_message());
    exit(2);
}

static void remove_scratch(void)
{
    if (scratch[0]) (void)dapt_fs_remove_tree(scratch);
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

/* One HDF5 file written and read back through dapt's own helpers: Open MPI
 * loads its MPI-IO components at the first file access and keeps
 * allocations (some unreachable) from then on, which would otherwise be
 * reported as a leak of whatever input came first. */
static void warm_up_hdf5(void)
{
    static dapt_config cfg; /* large: off the stack */
    dapt_config_defaults(&cfg);
    const char *p = fuzz_path("warm-up.h5");
    const int64_t dims[1] = {4};
    const int32_t v[4] = {1, 2, 3, 4};
    dapt_h5file f;
    dapt_status st = dapt_h5_create(MPI_COMM_SELF, p, 1, &cfg, &f);
    if (st == DAPT_OK) st = dapt_h5_write_all(&f, "x", DAPT_H5_I32, 1, dims, v);
    if (st == DAPT_OK) st = dapt_h5_commit(&f);
    if (st != DAPT_OK) fuzz_fail("writing the warm-up HDF5 file", st);
    void *data = NULL;
    int ndim = 0;
    int64_t got[DAPT_H5_MAX_DIMS];
    st = dapt_h5_open(MPI_COMM_SELF, p, &f);
    if (st == DAPT_OK) st = dapt_h5_read_all(&f, "x", DAPT_H5_I32, &data, &ndim, got);
    if (st != DAPT_OK) fuzz_fail("reading the warm-up HDF5 file", st);
    free(data);
    dapt_h5_close(&f);
}

int fuzz_init(int *argc, char ***argv)
{
    /* libFuzzer's -fork parent runs no input, only the children it spawns;
     * a parent in MPI would hand its singleton's environment down to them,
     * and their LeakSanitizer then fails (observed: "Tracer caught signal
     * 11" on the first leak check of every child). */
    for (int i = 1; i < *argc; i++)
        if (!strncmp((*argv)[i], "-fork=", 6) && strcmp((*argv)[i], "-fork=0") != 0) return 0;
    /* As tests/mpi_run.sh and the suite's environment do for root. */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    setenv("OMP_NUM_THREADS", "1", 0); /* one input at a time, one thread */
    /* Open MPI would otherwise take over SIGABRT, SIGSEGV, SIGBUS and SIGFPE
     * in MPI_Init, print its own backtrace and exit before libFuzzer saves
     * the input (observed: a harness abort() counted as a crash with no
     * artifact). */
    setenv("OMPI_MCA_opal_signal", "", 1);
    int done = 0;
    MPI_Initialized(&done);
    __lsan_disable(); /* what MPI_Init and the warm-up keep is not a finding */
    if (!done && MPI_Init(argc, argv) != MPI_SUCCESS) fuzz_fail("MPI_Init", DAPT_OK);
    /* Rejections are the normal case; warnings would flood the fuzzer's log. */
    dapt_log_setup(0, 0, DAPT_LOG_ERROR);
    /* Memory-backed by default: the HDF5 writers fsync every file they
     * commit, which on a disk would dominate each input's time. */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(scratch, sizeof scratch, "%s/dapt-fuzz-XXXXXX", tmp);
    if (!mkdtemp(scratch)) {
        scratch[0] = 0;
        fuzz_fail("mkdtemp", DAPT_OK);
    }
    atexit(remove_scratch);
    warm_up_hdf5();
    __lsan_enable();
    return 1;
}

const char *fuzz_path(const char *name)
{
    if (!scratch[0]) fuzz_fail("no scratch directory (fuzz_init has not run)", DAPT_OK);
    snprintf(path_buf, sizeof path_buf, "%s/%s", scratch, name);
    return path_buf;
}

const char *fuzz_write(const char *name, const uint8_t *data, size_t n)
{
    const char *p = fuzz_path(name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) fuzz_fail(p, DAPT_OK);
    return p;
}

const char *fuzz_srcdir(const char *rel)
{
    snprintf(src_buf, sizeof src_buf, "%s/%s", DAPT_FUZZ_SRCDIR, rel);
    return src_buf;
}

void fuzz_copy(const char *rel, const char *name)
{
    unsigned char *data = NULL;
    size_t len = 0;
    dapt_status st = dapt_fs_read_file(fuzz_srcdir(rel), (size_t)64 << 20, &data, &len);
    if (st != DAPT_OK) fuzz_fail(rel, st);
    fuzz_write(name, data, len);
    free(data);
}

void fuzz_done(dapt_status st)
{
    if (st != DAPT_OK) dapt_error_clear();
}

/* Words in and out of the tiny fixture vocabularies, specials written
 * literally, accents, CJK, control and combining characters, runs of
 * spaces: the paths normalisation and pre-tokenisation take. */
static const char sample_a[] = "The cat sat on the [MASK] mat.  <s>Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\tdog's</s>\x7f";
static const char sample_b[] = "a big red house, under the rug e\xcc\x81 <|endoftext|> ran";

static void check_decode(const dapt_tokenizer *tok, const dapt_ids *ids)
{
    char *text = NULL;
    dapt_status st = dapt_tokenizer_decode(tok, ids->data, ids->len, 1, &text, NULL);
    if (st != DAPT_OK) {
        fprintf(stderr, "fuzz: the tokenizer produced ids it cannot decode: %s\n", dapt_error_message());
        abort();
    }
    free(text);
}

void fuzz_tokenizer(const char *path)
{
    dapt_tokenizer *tok = NULL;
    dapt_status st = dapt_tokenizer_load(path, &tok);
    fuzz_done(st);
    if (st != DAPT_OK) return;
    dapt_tok_state *ts = NULL;
    st = dapt_tok_state_new(tok, &ts);
    if (st != DAPT_OK) fuzz_fail("dapt_tok_state_new", st);
    dapt_ids ids = {0};
    st = dapt_tokenizer_encode(tok, ts, sample_a, sizeof sample_a - 1, &ids);
    fuzz_done(st);
    if (st == DAPT_OK) check_decode(tok, &ids);
    dapt_encoding enc = {0};
    const dapt_encode_opts opts = {1, DAPT_TRUNC_LONGEST_FIRST, 12, 1};
    st = dapt_tokenizer_encode_full(tok, ts, sample_a, sizeof sample_a - 1, sample_b, sizeof sample_b - 1, &opts, &enc);
    fuzz_done(st);
    if (st == DAPT_OK) check_decode(tok, &enc.ids);
    dapt_encoding_free(&enc);
    dapt_ids_free(&ids);
    dapt_tok_state_free(ts);
    dapt_tokenizer_free(tok);
}

void fuzz_load_tokenizers(struct dapt_tokenizer *tok[2])
{
    dapt_status st = dapt_tokenizer_load(fuzz_srcdir("tests/fixtures/hf/bert_cls/vocab.txt"), &tok[0]);
    if (st != DAPT_OK) fuzz_fail("WordPiece fixture", st);
    st = dapt_tokenizer_load(fuzz_srcdir("tests/fixtures/hf/roberta_cls"), &tok[1]);
    if (st != DAPT_OK) fuzz_fail("BPE fixture", st);
}
