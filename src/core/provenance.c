/* The command line, build identity, time and host that output files record
 * (include/dapt/provenance.h). */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dapt/provenance.h"

static char *recorded_command;
static int64_t recorded_ranks;

/* Characters a shell takes literally outside quotes. */
static int plain_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_./=:,+@%-", c);
}

static int needs_quotes(const char *a)
{
    if (!*a) return 1;
    for (const char *p = a; *p; p++)
        if (!plain_char(*p)) return 1;
    return 0;
}

dapt_status dapt_provenance_record(int argc, char *const *argv)
{
    int size = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size)));
    /* Worst case every byte is a quote, written as '\'' (4 bytes). */
    size_t cap = 1;
    for (int i = 0; i < argc; i++) cap += 4 * strlen(argv[i]) + 3;
    char *line = NULL;
    DAPT_CHECK(dapt_alloc((void **)&line, cap, "the recorded command line"));
    char *w = line;
    for (int i = 0; i < argc; i++) {
        if (i) *w++ = ' ';
        if (!needs_quotes(argv[i])) {
            w = stpcpy(w, argv[i]);
            continue;
        }
        *w++ = '\'';
        for (const char *p = argv[i]; *p; p++) {
            if (*p == '\'') w = stpcpy(w, "'\\''"); /* close, escaped quote, reopen */
            else *w++ = *p;
        }
        *w++ = '\'';
    }
    *w = '\0';
    free(recorded_command);
    recorded_command = line;
    recorded_ranks = size;
    return DAPT_OK;
}

const char *dapt_provenance_command(void) { return recorded_command; }

int64_t dapt_provenance_ranks(void) { return recorded_command ? recorded_ranks : 0; }

const char *dapt_provenance_version(void) { return PACKAGE_VERSION; }

const char *dapt_provenance_git_commit(void) { return DAPT_GIT_COMMIT; }

dapt_status dapt_provenance_now(char *out, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    if (t == (time_t)-1 || !gmtime_r(&t, &tm)) return DAPT_ERROR(DAPT_ERR_IO, "cannot read the clock");
    if (strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "time buffer of %zu bytes is too small", len);
    return DAPT_OK;
}

dapt_status dapt_provenance_host(char *out, size_t len)
{
    if (len == 0) return DAPT_ERROR(DAPT_ERR_INTERNAL, "empty host name buffer");
    if (gethostname(out, len) != 0) return DAPT_ERROR(DAPT_ERR_IO, "cannot read the host name");
    out[len - 1] = '\0'; /* gethostname need not terminate a truncated name */
    return DAPT_OK;
}
