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
    if (st == DAPT_OK) st = dapt_cli_deadline_watch_start(rank);
    if (st != DAPT_OK) dapt_cli_fail(st);
    int code = DAPT_EXIT_OK;
    /* `dapt help CMD` is `dapt CMD --help`; `dapt --version` is `dapt version`. */
    const int help_for = argc == 3 && !strcmp(argv[1], "help");
    const char *name = argc < 2 ? NULL : help_for ? argv[2] : (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) ? "version" : argv[1];
    if (!name || (!help_for && (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")))) {
        if (rank == 0) {
            if (!name) fprintf(stderr, "dapt: error: no command given\n");
            print_usage(name ? stdout : stderr);
        }
        code = name ? DAPT_EXIT_OK : DAPT_EXIT_USAGE;
    } else {
        const dapt_command *found = NULL;
        for (const dapt_command *c = dapt_commands; c->name; c++)
            if (!strcmp(c->name, name)) found = c;
        if (found) {
            char *help_argv[] = {(char *)found->name, (char *)"--help", NULL};
            code = help_for ? found->run(2, help_argv) : found->run(argc - 1, argv + 1);
        } else {
            if (rank == 0) unknown_command(name);
            code = DAPT_EXIT_USAGE;
        }
    }
    dapt_cli_deadline_watch_stop();
    if (MPI_Finalize() != MPI_SUCCESS) {
        fprintf(stderr, "dapt: error: MPI_Finalize failed\n");
        if (code == DAPT_EXIT_OK) code = DAPT_EXIT_FAILURE;
    }
    return code;
}
