/* Plain-file helpers (see include/dapt/fsio.h). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "dapt/fsio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

dapt_status dapt_fs_open_regular(const char *path, int *fd, size_t *size)
{
    *fd = open(path, O_RDONLY);
    if (*fd < 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(*fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(*fd);
        *fd = -1;
        return DAPT_ERROR(DAPT_ERR_IO, "%s: not a regular file", path);
    }
    *size = (size_t)sb.st_size;
    return DAPT_OK;
}

dapt_status dapt_fs_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = -1;
    size_t n = 0;
    DAPT_CHECK(dapt_fs_open_regular(path, &fd, &n));
    if (n > max_bytes) {
        close(fd);
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %zu bytes, more than the %zu allowed", path, n, max_bytes);
    }
    unsigned char *buf = NULL;
    dapt_status st = dapt_alloc((void **)&buf, n + 1, path);
    if (st != DAPT_OK) {
        close(fd);
        return st;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            st = DAPT_ERROR(DAPT_ERR_IO, "%s: read failed after %zu of %zu bytes: %s", path, got, n,
                            r < 0 ? strerror(errno) : "unexpected end of file");
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (st != DAPT_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return DAPT_OK;
}

int dapt_fs_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

int dapt_fs_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

dapt_status dapt_fs_write_all(int fd, const void *data, size_t len, const char *path)
{
    const unsigned char *p = data;
    while (len > 0) {
        size_t chunk = len > ((size_t)1 << 30) ? (size_t)1 << 30 : len;
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return DAPT_ERROR(DAPT_ERR_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "no progress");
        p += w;
        len -= (size_t)w;
    }
    return DAPT_OK;
}

dapt_status dapt_fs_sync(const char *path, int directory)
{
    int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open to sync: %s", path, strerror(errno));
    int rc = fsync(fd), err = errno;
    close(fd);
    /* Some file systems refuse fsync on directories; the rename stays atomic. */
    if (rc != 0 && !(directory && (err == EINVAL || err == EBADF)))
        return DAPT_ERROR(DAPT_ERR_IO, "%s: fsync failed: %s", path, strerror(err));
    return DAPT_OK;
}

void dapt_fs_parent(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, len, ".");
    else if (slash == path) snprintf(dir, len, "/");
    else snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

dapt_status dapt_fs_write_atomic(const char *path, const void *data, size_t len, int force)
{
    if (!force && dapt_fs_exists(path))
        return DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists (use --force to replace it)", path);
    char tmp[4200], dir[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    dapt_status st = dapt_fs_write_all(fd, data, len, tmp);
    if (st == DAPT_OK && fsync(fd) != 0) st = DAPT_ERROR(DAPT_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == DAPT_OK)
        st = DAPT_ERROR(DAPT_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (st == DAPT_OK && rename(tmp, path) != 0)
        st = DAPT_ERROR(DAPT_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (st != DAPT_OK) {
        unlink(tmp);
        return st;
    }
    dapt_fs_parent(path, dir, sizeof dir);
    return dapt_fs_sync(dir, 1);
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 ? -1 : 0;
}

dapt_status dapt_fs_remove_tree(const char *path)
{
    if (!dapt_fs_exists(path)) return DAPT_OK;
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return DAPT_OK;
}

dapt_status dapt_fs_temp_dir(const char *final, int force, char *tmp, size_t len)
{
    if (!force && dapt_fs_exists(final))
        return DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists (use --force to replace it)", final);
    int n = snprintf(tmp, len, "%s.tmp.%ld", final, (long)getpid());
    if (n < 0 || (size_t)n >= len) return DAPT_ERROR(DAPT_ERR_ARG, "output path too long: %.80s...", final);
    DAPT_CHECK(dapt_fs_remove_tree(tmp)); /* a leftover of an earlier process with our pid */
    if (mkdir(tmp, 0755) != 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    return DAPT_OK;
}

dapt_status dapt_fs_publish_dir(const char *tmp, const char *final, int force)
{
    DAPT_CHECK(dapt_fs_sync(tmp, 1));
    char old[4200] = "", dir[4096];
    if (dapt_fs_exists(final)) {
        if (!force) return DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists (use --force to replace it)", final);
        snprintf(old, sizeof old, "%s.old.%ld", final, (long)getpid());
        DAPT_CHECK(dapt_fs_remove_tree(old));
        if (rename(final, old) != 0)
            return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot move the old output aside: %s", final, strerror(errno));
    }
    if (rename(tmp, final) != 0) {
        int err = errno;
        if (old[0]) rename(old, final); /* put the old output back */
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot rename %s into place: %s", final, tmp, strerror(err));
    }
    dapt_fs_parent(final, dir, sizeof dir);
    DAPT_CHECK(dapt_fs_sync(dir, 1));
    if (old[0]) DAPT_CHECK(dapt_fs_remove_tree(old));
    return DAPT_OK;
}

dapt_status dapt_fs_mkdir_p(const char *path)
{
    char *buf = strdup(path);
    if (!buf) return DAPT_ERROR(DAPT_ERR_NOMEM, "%s: no memory for the path", path);
    dapt_status st = DAPT_OK;
    for (char *p = buf + 1; st == DAPT_OK; p++) {
        int end = *p == '\0';
        if (*p != '/' && !end) continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            st = DAPT_ERROR(DAPT_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        if (end) break;
        *p = '/';
    }
    free(buf);
    return st;
}

dapt_status dapt_fs_csv_truncate(const char *path, int64_t last)
{
    if (!dapt_fs_exists(path)) return DAPT_OK;
    unsigned char *data = NULL;
    size_t len = 0;
    DAPT_CHECK(dapt_fs_read_file(path, (size_t)1 << 32, &data, &len));
    size_t keep = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = (const char *)data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        const size_t next = nl ? (size_t)(nl - (const char *)data) + 1 : len;
        long long key;
        if (pos > 0 && (sscanf(line, "%lld,", &key) != 1 || key > last)) break;
        keep = next;
        pos = next;
    }
    dapt_status st = dapt_fs_write_atomic(path, data, keep, 1);
    free(data);
    return st;
}
