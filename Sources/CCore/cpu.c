/*
 * The CPU features the vector paths need, asked once each. One copy of the CPUID and XGETBV checks (issue 28: the
 * resampler, the percentile compaction, the half conversion and SHA-256 each had their own).
 */
#include "ccore.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* AVX and OSXSAVE in CPUID leaf 1, and the OS saving XMM and YMM state (XCR0 bits 1-2). */
static int ymm_usable(void) {
    unsigned a, b, c, d;
    if (!(__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 28)) && (c & (1u << 27)))) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6u) == 6u;
}

static int leaf7_ebx(unsigned bit) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << bit));
}

static int leaf1_ecx(unsigned bit) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << bit));
}

/* Caches `probe`'s answer in `cached` (-1: not asked yet); a race asks twice and stores the same answer. */
#define CACHED(probe)                        \
    static int cached = -1;                  \
    if (cached < 0) cached = (probe) ? 1 : 0; \
    return cached

int cc_cpu_avx2(void) { CACHED(ymm_usable() && leaf7_ebx(5)); }
int cc_cpu_bmi2(void) { CACHED(leaf7_ebx(8)); }
int cc_cpu_f16c(void) { CACHED(ymm_usable() && leaf1_ecx(29)); }
int cc_cpu_sha(void) { CACHED(leaf1_ecx(19) && leaf1_ecx(9) && leaf7_ebx(29)); }

#else
int cc_cpu_avx2(void) { return 0; }
int cc_cpu_bmi2(void) { return 0; }
int cc_cpu_f16c(void) { return 0; }
int cc_cpu_sha(void) { return 0; }
#endif
