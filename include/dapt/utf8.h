/* UTF-8 decoding, the one place dapt does it: thin helpers over utf8proc
 * (utf8proc_iterate / utf8proc_encode_char), used by the tokenizers, input
 * checking in dapt prepare and JSON export.  Valid means what the Unicode
 * standard says: no overlong forms, no surrogates, nothing above U+10FFFF,
 * no sequence cut short.  None of these functions is collective. */
#ifndef DAPT_UTF8_H
#define DAPT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one scalar value from s[0..n) (n >= 1) into *cp; returns its byte
 * length (1..4), or 0 when the bytes at s are not valid UTF-8. */
size_t dapt_utf8_decode(const unsigned char *s, size_t n, int32_t *cp);

/* Writes scalar value cp as UTF-8 into out (room for 4 bytes); returns the
 * length. */
size_t dapt_utf8_encode(int32_t cp, char *out);

/* Byte offset of the first invalid sequence in s[0..n), or n if it is all
 * valid UTF-8. */
size_t dapt_utf8_validate(const char *s, size_t n);

/* For the invalid sequence at s[0..n) (dapt_utf8_decode returned 0): the
 * length of its maximal subpart -- the bytes one U+FFFD replaces in lossy
 * decoding (>= 1) -- and, when why is not NULL, a short cause:
 * "invalid UTF-8 (bad lead byte)", "invalid UTF-8 (sequence cut short)" (the
 * text ends inside a sequence) or "invalid UTF-8". */
size_t dapt_utf8_invalid(const unsigned char *s, size_t n, const char **why);

#endif
