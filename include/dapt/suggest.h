/* "Did you mean ...?": the closest of a set of known names to a mistyped
 * one, by edit distance (insertions, deletions, substitutions and swaps of
 * two neighbouring characters each cost 1).
 *
 * The candidates come one at a time, so a caller offers whatever its table
 * holds (schema keys as "section.key", command names, option names) without
 * building a list.  Not collective; no allocation. */
#ifndef DAPT_SUGGEST_H
#define DAPT_SUGGEST_H

#include <stddef.h>

#define DAPT_SUGGEST_MAX 128 /* longer names are never suggested */

typedef struct dapt_suggestion {
    const char *word;              /* what the user wrote */
    size_t best_distance;          /* of best; SIZE_MAX while none */
    char best[DAPT_SUGGEST_MAX];   /* the closest candidate so far */
} dapt_suggestion;

/* Starts a search for names close to word (not copied: it must outlive s). */
void dapt_suggest_start(dapt_suggestion *s, const char *word);

/* Offers one candidate; the first of equally close candidates is kept. */
void dapt_suggest_offer(dapt_suggestion *s, const char *candidate);

/* The closest candidate if it is close enough to be a typo of the word (at
 * most 1 edit for words of up to 4 characters, 2 up to 8, else 3; and
 * never the word itself), else NULL. */
const char *dapt_suggest_result(const dapt_suggestion *s);

/* Optimal string alignment distance between a and b (each at most
 * DAPT_SUGGEST_MAX - 1 bytes; longer strings count as SIZE_MAX). */
size_t dapt_edit_distance(const char *a, const char *b);

#endif
