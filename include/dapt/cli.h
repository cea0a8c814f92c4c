/* The `dapt` driver: command table and shared option handling.
 *
 * main() initialises MPI, finds the command and calls it; a command returns
 * a process exit code.  Commands report failures through dapt_cli_fail(),
 * the only place besides main that may end the job (MPI_Abort). */
#ifndef DAPT_CLI_H
#define DAPT_CLI_H

#include "dapt/config.h"
#include "dapt/status.h"

typedef int (*dapt_command_fn)(int argc, char **argv);

typedef struct dapt_command {
    const char *name;
    const char *summary;
    dapt_command_fn run;
} dapt_command;

/* NULL-terminated; defined in src/cli/commands.c. */
extern const dapt_command dapt_commands[];

/* Options every command accepts, parsed by dapt_cli_parse:
 *   --config FILE   INI file (applied before any --set)
 *   --set S.K=V     override, repeatable, applied in order
 *   --verbose       every rank logs; debug level
 *   --help          print the command's usage
 * Positional arguments and the command's own options are returned in
 * rest[0..nrest) in their original order (each option with its value in
 * the same element when written --opt=value, or in the next element). */
typedef struct dapt_cli {
    dapt_config cfg;
    const char *config_path;
    int verbose;
    int help;
    int nrest;
    char **rest;
} dapt_cli;

/* Collective over MPI_COMM_WORLD: every rank parses, then the ranks agree
 * that all succeeded and resolved the same configuration.  Returns
 * DAPT_ERR_ARG / DAPT_ERR_CONFIG with a message on bad options, on every
 * rank when any rank failed. */
dapt_status dapt_cli_parse(int argc, char **argv, dapt_cli *cli);

/* The start of every command: dapt_cli_parse (ending the job through
 * dapt_cli_fail_all on a bad option or configuration), then for --help the
 * usage on rank 0.  Returns 1 when --help was handled (cli is then freed and
 * the command returns DAPT_EXIT_OK), 0 to go on.  Collective over
 * MPI_COMM_WORLD (dapt_cli_parse is). */
int dapt_cli_begin(int argc, char **argv, dapt_cli *cli, void (*usage)(void));

/* Splits cli->rest into at most max positional arguments (pos[0..*npos))
 * and an optional --force; an unknown option or an extra argument is
 * "dapt COMMAND: unexpected argument 'X'".  Not collective. */
dapt_status dapt_cli_positional(const dapt_cli *cli, const char *command, const char **pos, int max, int *npos,
                                int *force);

/* Refuses leftover arguments for commands that take none:
 * "dapt NAME: unexpected argument 'X'".  Not collective. */
dapt_status dapt_cli_expect_no_args(const dapt_cli *cli, const char *command);

/* Releases what dapt_cli_parse allocated. */
void dapt_cli_free(dapt_cli *cli);

/* Prints "dapt: error: rank R: <message>" and ends the job: with one rank by
 * finalising MPI and exiting with DAPT_EXIT_FAILURE (or DAPT_EXIT_PREEMPTED
 * for DAPT_ERR_INTERRUPTED); with several by MPI_Abort, since the other
 * ranks may be blocked in a collective.  Never returns. */
_Noreturn void dapt_cli_fail(dapt_status st);

/* Like dapt_cli_fail, but for a failure every rank detected together
 * (collectively agreed): prints from rank 0 only, finalises and exits. */
_Noreturn void dapt_cli_fail_all(dapt_status st);

/* Command entry points, one per src/cli/cmd_<name>.c (keep sorted). */
int dapt_cmd_analyze(int argc, char **argv);
int dapt_cmd_config(int argc, char **argv);
int dapt_cmd_eval(int argc, char **argv);
int dapt_cmd_export(int argc, char **argv);
int dapt_cmd_finetune(int argc, char **argv);
int dapt_cmd_forward(int argc, char **argv);
int dapt_cmd_import(int argc, char **argv);
int dapt_cmd_importance(int argc, char **argv);
int dapt_cmd_infer(int argc, char **argv);
int dapt_cmd_prepare(int argc, char **argv);
int dapt_cmd_tokenize(int argc, char **argv);
int dapt_cmd_train(int argc, char **argv);
int dapt_cmd_version(int argc, char **argv);

/* Prints the text of `dapt <command> --help` common-option block. */
void dapt_cli_print_common_help(void);

#endif
