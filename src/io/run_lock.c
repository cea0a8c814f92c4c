/* One run per output directory (include/dapt/fsio.h). */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dapt/fsio.h"
#include "dapt/log.h"

dapt_status dapt_fs_lock_dir(const char *dir, int *fd)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/.dapt.lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (*fd < 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open the run lock: %s", path, strerror(errno));
    /* fcntl record locks, not flock: they also work on NFS and Lustre. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(*fd, F_SETLK, &fl) != 0) {
        const int e = errno;
        char holder[256] = "";
        const ssize_t n = pread(*fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        close(*fd);
        *fd = -1;
        if (e == EACCES || e == EAGAIN)
            return DAPT_ERROR(DAPT_ERR_EXISTS, "%s is in use by another dapt run (%s): wait for it to end or choose "
                              "another output directory", dir, holder[0] ? holder : "holder unknown");
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot lock: %s", path, strerror(e));
    }
    char host[128] = "?", when[32] = "?", line[256];
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    const time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    const int len = snprintf(line, sizeof line, "pid %ld on %s since %s\n", (long)getpid(), host, when);
    /* The holder's line only feeds the message above: failing to write it is not an error. */
    if (ftruncate(*fd, 0) != 0 || pwrite(*fd, line, (size_t)len, 0) != len)
        dapt_warn("%s: cannot record this run in the lock file: %s", path, strerror(errno));
    return DAPT_OK;
}

void dapt_fs_unlock_dir(int fd)
{
    if (fd >= 0) close(fd);
}
