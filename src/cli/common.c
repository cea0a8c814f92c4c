/* The command line of every command (getopt_long over the common options and
 * the command's own table), the run of a command, and the driver's way of
 * failing.  docs/cli.md describes the grammar. */
#include <errno.h>
#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/cli.h"
#include "dapt/fsio.h"
#include "dapt/log.h"
#include "dapt/suggest.h"

/* getopt_long values of the options without a short name; a command's own
 * option i is OPT_OWN + i. */
enum { OPT_CONFIG = 256, OPT_SET, OPT_OWN = 512 };

static _Noreturn void fail_agreed(dapt_status st, const char *hint);

/* "a|b|c" as "a, b or c". */
static void choices_text(const char *choices, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const char *c = choices; *c && used < len;) {
        size_t n = strcspn(c, "|");
        const char *sep = c[n] == '\0' ? "" : strchr(c + n + 1, '|') ? ", " : " or ";
        int w = snprintf(buf + used, len - used, "%.*s%s", (int)n, c, sep);
        if (w < 0) break;
        used += (size_t)w;
        c += n + (c[n] != '\0');
    }
}

/* Stores the value of one of the command's own options (not CONFIG). */
static dapt_status set_option(const char *command, const dapt_cli_option *o, const char *v)
{
    switch (o->kind) {
    case DAPT_OPT_FLAG:
        *(int *)o->dest = 1;
        return DAPT_OK;
    case DAPT_OPT_STRING:
        *(const char **)o->dest = v;
        return DAPT_OK;
    case DAPT_OPT_INT: {
        char *end = NULL;
        errno = 0;
        long long k = strtoll(v, &end, 10);
        if (end == v || *end || errno || k < o->min || k > o->max) {
            if (o->max == INT64_MAX)
                return DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: --%s '%s' is not an integer >= %lld", command,
                                  o->name, v, (long long)o->min);
            return DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: --%s '%s' is not an integer in %lld..%lld", command,
                              o->name, v, (long long)o->min, (long long)o->max);
        }
        *(int64_t *)o->dest = k;
        return DAPT_OK;
    }
    case DAPT_OPT_CHOICE: {
        int i = 0;
        for (const char *c = o->arg;; i++) {
            size_t n = strcspn(c, "|");
            if (strlen(v) == n && !strncmp(c, v, n)) {
                *(int *)o->dest = i;
                return DAPT_OK;
            }
            if (c[n] == '\0') break;
            c += n + 1;
        }
        char list[256];
        choices_text(o->arg, list, sizeof list);
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: --%s '%s' is not %s", command, o->name, v, list);
    }
    case DAPT_OPT_CONFIG:
        break;
    }
    return DAPT_ERROR(DAPT_ERR_INTERNAL, "dapt %s: --%s: option of kind %d stored as a value", command, o->name,
                      (int)o->kind);
}

/* A DAPT_OPT_CONFIG option: its key "section.key" set to v. */
static dapt_status set_config_key(dapt_config *cfg, const dapt_cli_option *o, const char *v)
{
    const char *dot = strchr(o->arg, '.');
    char section[64], where[80];
    if (!dot || (size_t)(dot - o->arg) >= sizeof section)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "--%s: '%s' is not section.key", o->name, o->arg);
    snprintf(section, sizeof section, "%.*s", (int)(dot - o->arg), o->arg);
    snprintf(where, sizeof where, "--%s", o->name);
    return dapt_config_set_value(cfg, section, dot + 1, v, where);
}

/* getopt_long also takes unambiguous abbreviations (--mod for --model);
 * dapt does not, so that adding an option never changes what an old command
 * line means.  text is the argument the option was read from. */
static int written_in_full(const char *text, const char *name)
{
    size_t n = strlen(name);
    return text[0] == '-' && text[1] == '-' && !strncmp(text + 2, name, n) && (text[2 + n] == '\0' || text[2 + n] == '=');
}

/* The message for an option getopt_long refused (c is '?' or ':') or that
 * was abbreviated.  text is the argument it was read from. */
static dapt_status option_error(const char *command, int c, const char *text, const struct option *lo, int short_opt)
{
    if (text[0] == '-' && text[1] == '-') {
        const char *name = text + 2;
        size_t n = strcspn(name, "=");
        const struct option *hit = NULL;
        for (const struct option *o = lo; o->name && !hit; o++)
            if (strlen(o->name) == n && !strncmp(o->name, name, n)) hit = o;
        if (hit && c == ':')
            return DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: option '--%s' needs a value", command, hit->name);
        if (hit && hit->has_arg == no_argument && name[n] == '=')
            return DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: option '--%s' takes no value", command, hit->name);
        char typed[DAPT_SUGGEST_MAX];
        snprintf(typed, sizeof typed, "%.*s", (int)n, name);
        dapt_suggestion s;
        dapt_suggest_start(&s, typed);
        for (const struct option *o = lo; o->name; o++) dapt_suggest_offer(&s, o->name);
        const char *close = dapt_suggest_result(&s);
        /* An abbreviation (refused, see written_in_full) names its option. */
        for (const struct option *o = lo; o->name && !close && n > 0; o++)
            if (!strncmp(o->name, typed, n)) close = o->name;
        char hint[DAPT_SUGGEST_MAX + 32] = "";
        if (close) snprintf(hint, sizeof hint, "; did you mean --%s?", close);
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: unknown option '--%s'%s (see dapt %s --help)", command, typed,
                          hint, command);
    }
    if (c == ':') return DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: option '-%c' needs a value", command, short_opt);
    return DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: unknown option '-%c' (see dapt %s --help)", command, short_opt,
                      command);
}

/* FNV-1a, enough to tell whether two texts differ. */
static unsigned long long text_hash(const char *s)
{
    unsigned long long h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Every rank reads the configuration itself; make sure they all succeeded
 * and resolved the same text, so no rank enters a collective the others
 * skip.  A failure on any rank (with its message) becomes every rank's. */
static dapt_status agree_on_config(const dapt_cli *cli, dapt_status st)
{
    if (cli->size == 1) return st;
    DAPT_CHECK(dapt_status_agree(MPI_COMM_WORLD, st));
    char *text = NULL;
    unsigned long long h = 0, lo = 0, hi = 0;
    int ok = dapt_config_to_ini(&cli->cfg, 0, &text) == DAPT_OK, all_ok = 0;
    if (ok) h = text_hash(text);
    free(text);
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD)));
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&h, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD)));
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&h, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD)));
    if (!all_ok) return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot format the configuration on some rank");
    if (lo != hi)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "the resolved configuration differs between ranks "
                                           "(is the --config file on a filesystem every node sees?)");
    return DAPT_OK;
}

/* A DAPT_OPT_CONFIG option and its value, applied after --config and --set. */
typedef struct later_key {
    const dapt_cli_option *opt;
    const char *value;
} later_key;

dapt_status dapt_cli_parse(int argc, char **argv, const char *command, const dapt_cli_option *opts, dapt_cli *cli)
{
    memset(cli, 0, sizeof *cli);
    dapt_config_defaults(&cli->cfg);
    cli->command = command;
    cli->size = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &cli->rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(MPI_COMM_WORLD, &cli->size)));
    int nown = 0;
    while (opts && opts[nown].name) nown++;
    struct option *lo = NULL;
    char *shorts = NULL;
    const char **sets = NULL;
    later_key *later = NULL;
    int nsets = 0, nlater = 0;
    dapt_status st = DAPT_OK, bad = DAPT_OK; /* bad: the first error of the line */
    DAPT_TRY(dapt_alloc((void **)&cli->args, sizeof(char *) * (size_t)(argc + 1), "arguments"));
    DAPT_TRY(dapt_alloc((void **)&sets, sizeof(char *) * (size_t)(argc + 1), "overrides"));
    DAPT_TRY(dapt_alloc((void **)&later, sizeof *later * (size_t)(argc + 1), "options"));
    DAPT_TRY(dapt_calloc((void **)&lo, (size_t)nown + 5, sizeof *lo, "options"));
    DAPT_TRY(dapt_alloc((void **)&shorts, 2 * (size_t)nown + 8, "options"));
    lo[0] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    lo[1] = (struct option){"set", required_argument, NULL, OPT_SET};
    lo[2] = (struct option){"verbose", no_argument, NULL, 'v'};
    lo[3] = (struct option){"help", no_argument, NULL, 'h'};
    /* "-": non-options come back in order as 1; ":": no messages from getopt,
     * ':' for a missing value. */
    size_t ns = (size_t)sprintf(shorts, "-:hv");
    for (int i = 0; i < nown; i++) {
        const int valued = opts[i].kind != DAPT_OPT_FLAG;
        lo[4 + i] = (struct option){opts[i].name, valued ? required_argument : no_argument, NULL, OPT_OWN + i};
        if (opts[i].short_name) {
            shorts[ns++] = opts[i].short_name;
            if (valued) shorts[ns++] = ':';
        }
    }
    shorts[ns] = '\0';

    optind = 0; /* a fresh scan (glibc) */
    opterr = 0;
    for (;;) {
        const int at = optind > 0 ? optind : 1;
        int idx = -1;
        const int c = getopt_long(argc, argv, shorts, lo, &idx);
        if (c == -1) break;
        const char *text = at < argc ? argv[at] : "";
        if (c == 1) {
            cli->args[cli->nargs++] = optarg;
            continue;
        }
        const int in_full = idx < 0 || written_in_full(text, lo[idx].name);
        if (c == 'h' && in_full) {
            cli->help = 1;
            continue;
        }
        if (bad != DAPT_OK) continue; /* read on for --help only */
        if (c == '?' || c == ':' || !in_full) {
            bad = option_error(command, c, text, lo, optopt);
            continue;
        }
        int own = c >= OPT_OWN ? c - OPT_OWN : -1;
        for (int i = 0; i < nown && own < 0 && c < 256; i++)
            if (opts[i].short_name == c) own = i;
        if (c == OPT_CONFIG) cli->config_path = optarg;
        else if (c == OPT_SET) sets[nsets++] = optarg;
        else if (c == 'v') cli->verbose = 1;
        else if (own < 0) bad = DAPT_ERROR(DAPT_ERR_INTERNAL, "dapt %s: getopt_long returned %d", command, c);
        else if (opts[own].kind == DAPT_OPT_CONFIG) later[nlater++] = (later_key){&opts[own], optarg};
        else bad = set_option(command, &opts[own], optarg);
    }
    for (; optind < argc; optind++) cli->args[cli->nargs++] = argv[optind]; /* after "--" */
    cli->args[cli->nargs] = NULL;
    if (cli->help) goto cleanup; /* nothing is read for --help */
    DAPT_TRY(bad);
    dapt_log_setup(cli->rank, cli->verbose, cli->verbose ? DAPT_LOG_DEBUG : DAPT_LOG_INFO);
    if (cli->config_path) DAPT_TRY(dapt_config_load_file(&cli->cfg, cli->config_path));
    for (int k = 0; k < nsets; k++) DAPT_TRY(dapt_config_set(&cli->cfg, sets[k]));
    for (int k = 0; k < nlater; k++) DAPT_TRY(set_config_key(&cli->cfg, later[k].opt, later[k].value));
cleanup:
    free(lo);
    free(shorts);
    free(sets);
    free(later);
    return agree_on_config(cli, st);
}

void dapt_cli_free(dapt_cli *cli)
{
    free(cli->args);
    cli->args = NULL;
    cli->nargs = 0;
}

void dapt_cli_print_common_help(void)
{
    printf("common options (every valued option also as --option=VALUE):\n"
           "  --config FILE     run configuration (INI); see `dapt config show --keys`\n"
           "  --set S.K=VALUE   override one key, repeatable (applied after --config)\n"
           "  --verbose, -v     log from every rank, with debug messages\n"
           "  --help, -h        this text\n");
}

static void print_failure(dapt_status st);

int dapt_cli_main(int argc, char **argv, const dapt_cli_command *cmd)
{
    dapt_cli cli;
    dapt_status st = dapt_cli_parse(argc, argv, cmd->name, cmd->options, &cli);
    if (st != DAPT_OK) {
        dapt_cli_free(&cli);
        dapt_cli_fail_all(st);
    }
    if (cli.help) {
        if (cli.rank == 0) cmd->usage();
        dapt_cli_free(&cli);
        return DAPT_EXIT_OK;
    }
    if (cmd->max_args >= 0 && cli.nargs > cmd->max_args) {
        st = DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: unexpected argument '%s' (see dapt %s --help)", cmd->name,
                        cli.args[cmd->max_args], cmd->name);
    } else if (cli.nargs < cmd->min_args) {
        st = DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: %d argument%s expected, %d given (see dapt %s --help)", cmd->name,
                        cmd->min_args, cmd->min_args == 1 ? "" : "s", cli.nargs, cmd->name);
    } else {
        if (!cmd->rank0 || cli.rank == 0) st = cmd->run(&cli, cmd->ctx);
        st = dapt_status_agree(MPI_COMM_WORLD, st);
    }
    const int usage = cli.want_usage, rank = cli.rank;
    char hint[512];
    dapt_cli_memory_hint(&cli, st, dapt_error_alloc_bytes(), hint, sizeof hint);
    dapt_cli_free(&cli);
    if (usage) {
        /* A command that refused its arguments shows what it takes, after
         * the line saying what was wrong. */
        if (rank == 0) {
            if (st != DAPT_OK) print_failure(st);
            cmd->usage();
        }
        return DAPT_EXIT_USAGE;
    }
    if (st != DAPT_OK) fail_agreed(st, hint);
    return DAPT_EXIT_OK;
}

dapt_status dapt_cli_mpi_init(int *argc, char ***argv)
{
    /* Threads (OpenMP, OpenBLAS) never call MPI themselves: FUNNELED. */
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "dapt: error: MPI_Init_thread failed\n");
        return DAPT_ERROR(DAPT_ERR_MPI, "MPI_Init_thread failed");
    }
    /* MPI failures come back as codes, which DAPT_MPI turns into a dapt error
     * with MPI's message, instead of aborting inside the library.
     * Communicators made from these two inherit the handler. */
    dapt_status st = DAPT_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    if (st == DAPT_OK) st = DAPT_MPI(MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN));
    if (st != DAPT_OK) dapt_cli_fail(st);
    return DAPT_OK;
}

/* Rank and size of MPI_COMM_WORLD; -1 and 0 when MPI cannot tell (the
 * failure being reported may be MPI's). */
static void world(int *rank, int *size)
{
    if (MPI_Comm_rank(MPI_COMM_WORLD, rank) != MPI_SUCCESS) *rank = -1;
    if (MPI_Comm_size(MPI_COMM_WORLD, size) != MPI_SUCCESS) *size = 0;
}

/* "dapt: error: CAUSE [ranks ...]", one line per distinct cause; with
 * DAPT_DEBUG also where in dapt's source each was recorded. */
static void print_failure(dapt_status st)
{
    char text[16384];
    dapt_error_report(st, dapt_error_debug(), text, sizeof text);
    for (char *line = text; *line;) {
        const size_t n = strcspn(line, "\n");
        fprintf(stderr, "dapt: error: %.*s\n", (int)n, line);
        line += n + (line[n] == '\n');
    }
    fflush(stderr);
}

static int exit_code_for(dapt_status st)
{
    if (st == DAPT_ERR_INTERRUPTED) return DAPT_EXIT_PREEMPTED;
    if (st == DAPT_ERR_ARG) return DAPT_EXIT_USAGE;
    return DAPT_EXIT_FAILURE;
}

_Noreturn void dapt_cli_fail(dapt_status st)
{
    int rank = 0, size = 0;
    world(&rank, &size);
    print_failure(st);
    /* With other ranks (or when MPI cannot say) they may wait in a
     * collective: only MPI_Abort ends them. */
    if (size != 1 && MPI_Abort(MPI_COMM_WORLD, exit_code_for(st)) != MPI_SUCCESS)
        fprintf(stderr, "dapt: error: MPI_Abort failed\n");
    if (MPI_Finalize() != MPI_SUCCESS) fprintf(stderr, "dapt: error: MPI_Finalize failed\n");
    exit(exit_code_for(st));
}

/* The end of a failure every rank agreed on: rank 0 prints it (and the
 * hint, if any), every rank finalises MPI and exits with the code, so there
 * is no MPI_Abort and no Open MPI text about it. */
static _Noreturn void fail_agreed(dapt_status st, const char *hint)
{
    int rank = 0, size = 0;
    world(&rank, &size);
    if (rank <= 0) {
        print_failure(st);
        if (hint && *hint) fprintf(stderr, "dapt: hint: %s\n", hint);
        fflush(stderr);
    }
    if (MPI_Finalize() != MPI_SUCCESS) fprintf(stderr, "dapt: error: MPI_Finalize failed\n");
    exit(exit_code_for(st));
}

_Noreturn void dapt_cli_fail_all(dapt_status st) { fail_agreed(st, NULL); }

dapt_status dapt_cli_lock_output(const dapt_cli *cli, const char *dir, int *fd)
{
    *fd = -1;
    dapt_status st = DAPT_OK;
    if (!dir || !dir[0]) return DAPT_OK; /* the command refuses a missing output itself */
    if (cli->rank == 0) {
        st = dapt_fs_mkdir_p(dir);
        if (st == DAPT_OK) st = dapt_fs_lock_dir(dir, fd);
    }
    return dapt_status_agree(MPI_COMM_WORLD, st);
}
