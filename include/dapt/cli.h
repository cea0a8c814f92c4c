/* The `dapt` driver: command table and the one way a command reads its
 * command line (docs/cli.md).
 *
 * main() initialises MPI, finds the command and calls its dapt_cmd_<name>.
 * That function describes the command in a dapt_cli_command (its options,
 * how many positional arguments it takes, its body) and returns
 * dapt_cli_main(), which parses the line with getopt_long, answers --help,
 * reads the configuration, runs the body and turns its status into the
 * process exit code.  dapt_cli_fail() and dapt_cli_fail_all() are the only
 * places besides main that may end the job. */
#ifndef DAPT_CLI_H
#define DAPT_CLI_H

#include <stdint.h>

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

/* What a command option holds and where its value goes.  Every valued
 * option is accepted as --name VALUE and --name=VALUE (and -X VALUE, -XVALUE
 * when it has a short name); long names must be written in full. */
typedef enum dapt_cli_kind {
    DAPT_OPT_FLAG,   /* no value: *(int *)dest = 1 */
    DAPT_OPT_STRING, /* *(const char **)dest = the value (a pointer into argv) */
    DAPT_OPT_INT,    /* *(int64_t *)dest = the value, a decimal integer in [min, max] */
    DAPT_OPT_CHOICE, /* *(int *)dest = the position of the value in arg ("a|b|c") */
    DAPT_OPT_CONFIG  /* the configuration key arg ("section.key") = the value,
                      * applied after --config and every --set */
} dapt_cli_kind;

typedef struct dapt_cli_option {
    const char *name;  /* long name without the dashes; NULL ends a table */
    char short_name;   /* the letter of -X as well, or 0 */
    dapt_cli_kind kind;
    void *dest;        /* FLAG, STRING, INT, CHOICE (see above); NULL for CONFIG */
    const char *arg;   /* CHOICE: the choices "a|b|c"; CONFIG: "section.key" */
    int64_t min, max;  /* INT: the accepted range */
} dapt_cli_option;

/* A parsed command line.  Options every command accepts:
 *   --config FILE   INI file (applied before any --set)
 *   --set S.K=V     override, repeatable, applied in order
 *   --verbose, -v   every rank logs; debug level
 *   --help, -h      print the command's usage
 * The command's own options went to their destinations; what is left are
 * the positional arguments args[0..nargs), in their order (everything after
 * a "--" is positional). */
typedef struct dapt_cli {
    dapt_config cfg;
    const char *command;     /* "prepare", for messages */
    const char *config_path;
    int verbose;
    int help;
    int rank, size;          /* in MPI_COMM_WORLD */
    int nargs;
    char **args;
    int want_usage;          /* set by a body: print the usage, exit DAPT_EXIT_USAGE */
} dapt_cli;

/* One command as dapt_cli_main runs it. */
typedef struct dapt_cli_command {
    const char *name;                /* as in `dapt NAME` */
    void (*usage)(void);             /* the --help text; printed by rank 0 */
    const dapt_cli_option *options;  /* the command's own; NULL or ended by a NULL name */
    int min_args;                    /* fewer positional arguments: usage, DAPT_EXIT_USAGE */
    int max_args;                    /* more: "unexpected argument"; < 0: any number */
    int rank0;                       /* the body runs on rank 0 only, the others wait */
    /* The body: parsed options are in their destinations, positional
     * arguments in cli->args.  The status it returns is agreed among the
     * ranks (a failure on any rank fails the job with that rank's message);
     * a body that fails while other ranks may be inside a collective ends
     * the job itself with dapt_cli_fail. */
    dapt_status (*run)(dapt_cli *cli, void *ctx);
    void *ctx;                       /* passed to run (the command's argument struct) */
} dapt_cli_command;

/* MPI_Init_thread (MPI_THREAD_FUNNELED), then MPI_ERRORS_RETURN on
 * MPI_COMM_WORLD and MPI_COMM_SELF, so that a failed MPI call returns its
 * code to the DAPT_MPI wrappers (and ends as a dapt error line) instead of
 * aborting inside the library.  Returns DAPT_ERR_MPI, having printed the
 * error, when MPI could not start; ends the job when the handler cannot be
 * set.  main() calls it first. */
dapt_status dapt_cli_mpi_init(int *argc, char ***argv);

/* The whole of a command: dapt_cli_parse (a bad option or configuration
 * ends the job with one line and DAPT_EXIT_USAGE or DAPT_EXIT_FAILURE),
 * --help, the count of positional arguments, the body, the agreement on its
 * status, dapt_cli_free.  Returns the exit code (DAPT_EXIT_OK, or
 * DAPT_EXIT_USAGE after printing the usage); failures end the job through
 * dapt_cli_fail_all.  Collective over MPI_COMM_WORLD. */
int dapt_cli_main(int argc, char **argv, const dapt_cli_command *cmd);

/* Parses argv[1..argc) (argv[0] is the command name) with getopt_long
 * against the common options and opts, then reads --config, applies the
 * --set overrides and the DAPT_OPT_CONFIG options.  An unknown option is
 * "dapt COMMAND: unknown option '--x'", a valued option at the end of the
 * line "dapt COMMAND: option '--x' needs a value" (DAPT_ERR_ARG).  --help
 * wins over every error of the line: cli->help is set and nothing is read.
 * Collective over MPI_COMM_WORLD: every rank parses, then the ranks agree
 * that all succeeded and resolved the same configuration; on failure every
 * rank returns the error. */
dapt_status dapt_cli_parse(int argc, char **argv, const char *command, const dapt_cli_option *opts,
                           dapt_cli *cli);

/* Releases what dapt_cli_parse allocated. */
void dapt_cli_free(dapt_cli *cli);

/* Creates the run directory dir and takes its lock on rank 0
 * (dapt_fs_lock_dir): a directory another live run uses is refused on every
 * rank with one line.  *fd is -1 on the other ranks; release with
 * dapt_fs_unlock_dir.  Collective over MPI_COMM_WORLD. */
dapt_status dapt_cli_lock_output(const dapt_cli *cli, const char *dir, int *fd);

/* For a failure this rank saw alone: prints its record ("dapt: error:
 * CAUSE [rank R]", dapt_error_report) and ends the job: with one rank by
 * finalising MPI and exiting with DAPT_EXIT_FAILURE (DAPT_EXIT_USAGE for
 * DAPT_ERR_ARG, DAPT_EXIT_PREEMPTED for DAPT_ERR_INTERRUPTED); with several
 * by MPI_Abort, since the other ranks may be blocked in a collective.  Never
 * returns.  Not collective. */
_Noreturn void dapt_cli_fail(dapt_status st);

/* For a failure every rank agreed on (dapt_status_agree): rank 0 prints
 * each distinct cause once with the ranks that hit it, every rank finalises
 * MPI and exits with the code above (no MPI_Abort).  Collective over
 * MPI_COMM_WORLD (MPI_Finalize). */
_Noreturn void dapt_cli_fail_all(dapt_status st);

/* A watchdog thread on this rank (run.watchdog_s > 0): when no heartbeat
 * (dapt_heartbeat) comes for that many seconds -- a stopped or dead peer
 * leaves this rank waiting in a collective forever -- it prints "dapt:
 * error: rank R: no progress for N s (last: DOING ...)" and ends the job with
 * MPI_Abort, so a job never hangs until its time limit.  Not collective;
 * every rank starts its own.  dapt_cli_watchdog_stop ends it. */
dapt_status dapt_cli_watchdog_start(const dapt_cli *cli);
void dapt_cli_watchdog_stop(void);

/* The deadline watcher (dapt_deadline_begin, log.h), for every command:
 * a thread that, when an armed deadline passes, prints "dapt: error: rank
 * R: WHAT did not finish in S s: ..." and ends the job with MPI_Abort.
 * Started by main after MPI_Init, stopped before MPI_Finalize.  Not
 * collective. */
dapt_status dapt_cli_deadline_watch_start(int rank);
void dapt_cli_deadline_watch_stop(void);

/* The line the driver prints after "dapt: error:" when a command ran out of
 * memory: what to change so that the model, optimizer state and
 * activations fit ("set train.grad_accum = 2 (micro-batches of 16 of the
 * 32 sequences), model.recompute = true, ..."), with values from cli->cfg.
 * "" unless st is DAPT_ERR_NOMEM for alloc_bytes >= 1 MiB (smaller ones
 * are not what the keys change) in `dapt train` or `dapt finetune`.
 * Not collective. */
void dapt_cli_memory_hint(const dapt_cli *cli, dapt_status st, size_t alloc_bytes, char *buf, size_t len);

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
int dapt_cmd_inspect(int argc, char **argv);
int dapt_cmd_prepare(int argc, char **argv);
int dapt_cmd_tokenize(int argc, char **argv);
int dapt_cmd_train(int argc, char **argv);
int dapt_cmd_version(int argc, char **argv);

/* Prints the text of `dapt <command> --help` common-option block. */
void dapt_cli_print_common_help(void);

#endif
