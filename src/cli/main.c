/* dapt: domain-adaptive post-training of language models on MPI clusters. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "dapt/cli.h"
#include "dapt/provenance.h"
#include "dapt/suggest.h"

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: dapt <command> [options]\n"
            "\n"
            "dapt %s adapts pretrained BERT/RoBERTa models to a domain (post-training with\n"
            "DGA/DAS, MLM, KD, EWC; fine-tuning with SMART) as an MPI batch job.  Commands:\n\n",
            PACKAGE_VERSION);
    for (const dapt_command *c = dapt_commands; c->name; c++) fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out, "  %-10s %s\n", "help", "this list; `dapt <command> --help` for one command");
    fprintf(out, "\nRun under mpirun/srun for more than one rank.  Documentation: docs/.\n");
}

/* "unknown command", with the closest command name when it looks like a
 * typo of one. */
static void unknown_command(const char *name)
{
    dapt_suggestion s;
    dapt_suggest_start(&s, name);
    for (const dapt_command *c = dapt_commands; c->name; c++) dapt_suggest_offer(&s, c->name);
    dapt_suggest_offer(&s, "help");
    const char *close = dapt_suggest_result(&s);
    if (close) fprintf(stderr, "dapt: error: unknown command '%s'; did you mean '%s'? (see dapt help)\n", name, close);
    else fprintf(stderr, "dapt: error: unknown command '%s' (see dapt help)\n", name);
}

int main(int argc, char **argv)
{
    /* MPI, with MPI_ERRORS_RETURN on MPI_COMM_WORLD and MPI_COMM_SELF. */
    if (dapt_cli_mpi_init(&argc, &argv) != DAPT_OK) return DAPT_EXIT_FAILURE;
    int rank = 0;
    dapt_status st = DAPT_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    if (st == DAPT_OK) st = dapt_provenance_record(argc, argv); /* the "command" of every output file */
    if (st != DAPT_OK) dapt_cli_fail(st);
    int code = DAPT_EXIT_OK;
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (rank == 0) print_usage(stdout);
        code = argc < 2 ? DAPT_EXIT_USAGE : DAPT_EXIT_OK;
    } else {
        const dapt_command *found = NULL;
        for (const dapt_command *c = dapt_commands; c->name; c++)
            if (!strcmp(c->name, argv[1])) found = c;
        if (found) {
            code = found->run(argc - 1, argv + 1);
        } else {
            if (rank == 0) unknown_command(argv[1]);
            code = DAPT_EXIT_USAGE;
        }
    }
    if (MPI_Finalize() != MPI_SUCCESS) {
        fprintf(stderr, "dapt: error: MPI_Finalize failed\n");
        if (code == DAPT_EXIT_OK) code = DAPT_EXIT_FAILURE;
    }
    return code;
}
