/* "Did you mean ...?" by edit distance (include/dapt/suggest.h). */
#include "dapt/suggest.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

size_t dapt_edit_distance(const char *a, const char *b)
{
    const size_t n = strlen(a), m = strlen(b);
    if (n >= DAPT_SUGGEST_MAX || m >= DAPT_SUGGEST_MAX) return SIZE_MAX;
    /* Three rows of the dynamic-programming table: the swap of two
     * neighbours ("stpes" for "steps") looks two rows back. */
    size_t rows[3][DAPT_SUGGEST_MAX];
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= m; j++) prev[j] = j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= m; j++) {
            const size_t cost = a[i - 1] != b[j - 1];
            size_t d = prev[j - 1] + cost;
            if (prev[j] + 1 < d) d = prev[j] + 1;
            if (cur[j - 1] + 1 < d) d = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < d)
                d = prev2[j - 2] + 1;
            cur[j] = d;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[m];
}

void dapt_suggest_start(dapt_suggestion *s, const char *word)
{
    s->word = word;
    s->best_distance = SIZE_MAX;
    s->best[0] = '\0';
}

void dapt_suggest_offer(dapt_suggestion *s, const char *candidate)
{
    const size_t d = dapt_edit_distance(s->word, candidate);
    if (d >= s->best_distance) return;
    s->best_distance = d;
    snprintf(s->best, sizeof s->best, "%s", candidate);
}

const char *dapt_suggest_result(const dapt_suggestion *s)
{
    const size_t len = strlen(s->word);
    /* Short words are close to everything: allow fewer edits. */
    const size_t limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    if (s->best_distance == 0 || s->best_distance > limit) return NULL;
    return s->best;
}
