/* SHA-256 (FIPS 180-4), for provenance checksums of vocabularies and input
 * files.  Incremental: init, update any number of times, final.  Nothing
 * here is collective; a context is used by one thread at a time. */
#ifndef DAPT_SHA256_H
#define DAPT_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct dapt_sha256 {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    unsigned char block[64];
    size_t used; /* bytes waiting in block */
} dapt_sha256;

void dapt_sha256_init(dapt_sha256 *s);
void dapt_sha256_update(dapt_sha256 *s, const void *data, size_t len);
void dapt_sha256_final(dapt_sha256 *s, unsigned char digest[32]);

/* Writes the 64 lower-case hex digits of digest and a NUL into hex[65]. */
void dapt_sha256_hex(const unsigned char digest[32], char hex[65]);

#endif
