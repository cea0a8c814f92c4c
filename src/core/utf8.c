/* UTF-8 helpers over utf8proc (include/dapt/utf8.h). */
#include "dapt/utf8.h"

#include <string.h>
#include <utf8proc.h>

size_t dapt_utf8_decode(const unsigned char *s, size_t n, int32_t *cp)
{
    if (n == 0) return 0;
    if (s[0] < 0x80) { /* most text is mostly ASCII */
        *cp = s[0];
        return 1;
    }
    utf8proc_int32_t v = -1;
    utf8proc_ssize_t k = utf8proc_iterate(s, n < 4 ? (utf8proc_ssize_t)n : 4, &v);
    if (k <= 0 || v < 0) return 0;
    *cp = (int32_t)v;
    return (size_t)k;
}

size_t dapt_utf8_encode(int32_t cp, char *out)
{
    return (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
}

size_t dapt_utf8_validate(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII eight bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        int32_t cp;
        size_t k = dapt_utf8_decode(u + i, n - i, &cp);
        if (!k) return i;
        i += k;
    }
    return n;
}

/* Does some valid sequence start with s[0..k) (k >= 1, shorter than the
 * sequence its lead byte announces)?  Completes it with continuation bytes
 * and asks utf8proc; the second byte is tried at the bottom of each range a
 * lead byte allows (0x80, 0x90 after F0, 0xA0 after E0). */
static int viable_prefix(const unsigned char *s, size_t k)
{
    const int len = utf8proc_utf8class[s[0]];
    if (len < 2 || (size_t)len <= k) return 0;
    static const unsigned char second[3] = {0x80, 0x90, 0xA0};
    for (size_t t = 0; t < (k == 1 ? 3u : 1u); t++) {
        unsigned char probe[4];
        memcpy(probe, s, k);
        memset(probe + k, 0x80, (size_t)len - k);
        if (k == 1) probe[1] = second[t];
        utf8proc_int32_t v;
        if (utf8proc_iterate(probe, len, &v) == len) return 1;
    }
    return 0;
}

size_t dapt_utf8_invalid(const unsigned char *s, size_t n, const char **why)
{
    size_t v = 0; /* the longest prefix some valid sequence starts with */
    while (v < n && v < 3 && viable_prefix(s, v + 1)) v++;
    if (why) {
        if (v == 0) *why = "invalid UTF-8 (bad lead byte)";
        else if (v == n) *why = "invalid UTF-8 (sequence cut short)";
        else *why = "invalid UTF-8";
    }
    return v ? v : 1;
}
