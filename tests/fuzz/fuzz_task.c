/* Labelled task examples, TSV or JSONL (dapt_prepare_task on one rank:
 * line splitting, UTF-8 checks, fields, labels, regression values,
 * encoding with the template and truncation).  The first input byte picks
 * the format (bit 0), regression (bit 1) and the tokenizer (bit 2:
 * byte-level BPE, else WordPiece); the rest is the file.  A task dapt
 * prepare wrote must read back (dapt_task_file_open, dapt_task_split_read). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "dapt/config.h"
#include "dapt/corpus.h"
#include "dapt/task.h"
#include "dapt/tokenizer.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static dapt_tokenizer *tok[2];
static dapt_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!fuzz_init(argc, argv)) return 0;
    fuzz_load_tokenizers(tok);
    dapt_config_defaults(&cfg);
    cfg.tokenizer.max_length = 16; /* short, so truncation runs */
    return 0;
}

static void read_back(const char *path, int regression)
{
    dapt_task_file t = {0};
    dapt_task_split s = {0};
    dapt_status st = dapt_task_file_open(path, &t);
    if (st == DAPT_OK) st = dapt_task_split_read(&t, "train", &s);
    if (st == DAPT_OK && (t.regression != regression || (regression ? !s.values : !s.labels))) {
        fprintf(stderr, "fuzz: task written as %s reads back as %s\n", regression ? "regression" : "classification",
                t.regression ? "regression" : "classification");
        abort();
    }
    if (st != DAPT_OK) {
        fprintf(stderr, "fuzz: a task dapt prepare wrote does not read back: %s\n", dapt_error_message());
        abort();
    }
    dapt_task_split_free(&s);
    dapt_task_file_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const int jsonl = data[0] & 1, regression = (data[0] >> 1) & 1;
    const char *in = jsonl ? "train.jsonl" : "train.tsv";
    char input[4200], output[4200];
    snprintf(input, sizeof input, "%s", fuzz_write(in, data + 1, size - 1));
    snprintf(output, sizeof output, "%s", fuzz_path("task.h5"));
    const char *inputs[1] = {input};
    const dapt_prepare_opts o = {.tok = tok[(data[0] >> 2) & 1], .tokenizer_path = "fuzz", .inputs = inputs,
                                 .n_inputs = 1, .output = output, .force = 1, .cfg = &cfg,
                                 .format = jsonl ? DAPT_TASK_JSONL : DAPT_TASK_TSV, .regression = regression};
    dapt_prepare_stats stats;
    dapt_status st = dapt_prepare_task(MPI_COMM_SELF, &o, &stats);
    fuzz_done(st);
    if (st == DAPT_OK) read_back(output, regression);
    return 0;
}
