/* CRC-32 of dapt's datasets (see dapt/crc32.h). */
#include "dapt/crc32.h"

#include <zlib.h>

uint32_t dapt_crc32(const void *data, size_t bytes)
{
    const unsigned char *p = data;
    uLong crc = crc32(0L, Z_NULL, 0);
    while (bytes > 0) {
        uInt chunk = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
        crc = crc32(crc, p, chunk);
        p += chunk;
        bytes -= chunk;
    }
    return (uint32_t)crc;
}

dapt_status dapt_crc32_verify(const char *path, const char *dataset, int64_t want, int64_t got)
{
    if (got == want) return DAPT_OK;
    return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: checksum mismatch (CRC-32 stored %08llx, computed %08llx): the file is corrupted",
                      path, dataset, (unsigned long long)want, (unsigned long long)got);
}
