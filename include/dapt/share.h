/* The one even split of n items over R ranks (or parts): rank r of R owns
 * the contiguous range [*begin, *begin + *count), the first n mod R ranks
 * one item more than the others.  The ranges of ranks 0..R-1 follow each
 * other and cover [0, n).  A rank outside 0..R-1, or n <= 0, owns nothing
 * (begin 0, count 0).  Not collective. */
#ifndef DAPT_SHARE_H
#define DAPT_SHARE_H

#include <stdint.h>

void dapt_share(int64_t n, int r, int R, int64_t *begin, int64_t *count);

#endif
