/* Library and kernel introspection. */
#include "dapt/platform.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/log.h"

const char *dapt_blas_corename(void) { return openblas_get_corename(); }

const char *dapt_blas_best_corename(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2")) return "Haswell";
    if (__builtin_cpu_supports("avx")) return "Sandybridge";
    return "Nehalem";
#else
    return openblas_get_corename();
#endif
}

/* Ranks OpenBLAS x86 kernel families by vector width. */
static int kernel_rank(const char *name)
{
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids"};
    static const char *const avx2[] = {"haswell", "zen"};
    char lower[64];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof lower; i++) lower[i] = (char)(name[i] | 0x20);
    lower[i] = '\0';
    for (size_t k = 0; k < 3; k++)
        if (!strcmp(lower, avx512[k])) return 3;
    for (size_t k = 0; k < 2; k++)
        if (!strcmp(lower, avx2[k])) return 2;
    if (!strcmp(lower, "sandybridge")) return 1;
    return 0;
}

int dapt_blas_kernels_degraded(char *buf, size_t len)
{
    const char *used = dapt_blas_corename(), *best = dapt_blas_best_corename();
    if (kernel_rank(used) >= kernel_rank(best)) return 0;
    const char *forced = getenv("OPENBLAS_CORETYPE");
    snprintf(buf, len,
             "OpenBLAS runs %s kernels but this CPU supports %s%s%s%s; sgemm is slower "
             "(unset OPENBLAS_CORETYPE or set it to %s)",
             used, best, forced ? " (OPENBLAS_CORETYPE=" : "", forced ? forced : "", forced ? ")" : "",
             best);
    return 1;
}

void dapt_platform_log(void)
{
    dapt_info("BLAS: OpenBLAS %s kernels, %d threads; OpenMP %d threads", dapt_blas_corename(),
              openblas_get_num_threads(), omp_get_max_threads());
    char why[256];
    if (dapt_blas_kernels_degraded(why, sizeof why)) dapt_warn("%s", why);
}

double dapt_physical_memory(void)
{
    const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}
