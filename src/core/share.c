/* The one even split (include/dapt/share.h). */
#include "dapt/share.h"

void dapt_share(int64_t n, int r, int R, int64_t *begin, int64_t *count)
{
    *begin = 0;
    *count = 0;
    if (n <= 0 || R <= 0 || r < 0 || r >= R) return;
    const int64_t q = n / R, rem = n % R;
    *count = q + (r < rem ? 1 : 0);
    *begin = r * q + (r < rem ? r : rem);
}
