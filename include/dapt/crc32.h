/* CRC-32 (zlib's polynomial) of the datasets dapt writes: every parameter,
 * optimizer moment and tokenizer file in model files and checkpoints
 * carries it as the attribute "crc32" (docs/formats.md), so a flipped byte
 * is refused on reading instead of trained on.  Nothing here is
 * collective. */
#ifndef DAPT_CRC32_H
#define DAPT_CRC32_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/status.h"

/* CRC-32 of a buffer of any size (zlib takes 32-bit lengths: chunked). */
uint32_t dapt_crc32(const void *data, size_t bytes);

/* DAPT_OK when got equals want, else DAPT_ERR_FORMAT with one line naming
 * the file and the dataset and both values. */
dapt_status dapt_crc32_verify(const char *path, const char *dataset, int64_t want, int64_t got);

#endif
