// The two passes of a channel's percentiles (RobustRange, issue 20: 7 % of a cold ingest), eight values at a time.
// Both keep some values of a buffer in order (the covered means; the values inside a band), which the Swift loops do one
// value at a time (a store and a counter per value, branch-free). Here a comparison gives eight lanes' mask, BMI2's
// pext turns it into the permutation that packs the kept lanes to the front, and a masked store writes just those.
// The values are computed with the same operations and kept in the same order: the same bits.
#include "cfusion.h"
#include "ccore.h"

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__)
#include <immintrin.h>

// The lanes of `v` whose bit is set in `mask` (8 bits), packed to the front in lane order.
__attribute__((target("avx2,bmi2")))
static inline __m256 pack(__m256 v, unsigned mask) {
    const uint64_t bytes = _pdep_u64(mask, 0x0101010101010101ull) * 0xFF;
    const uint64_t order = _pext_u64(0x0706050403020100ull, bytes);
    return _mm256_permutevar8x32_ps(v, _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)order)));
}

// Lanes 0 ..< k set.
__attribute__((target("avx2")))
static inline __m256i first(int k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2,bmi2")))
static int64_t means_avx2(float *sums, const float *counts, int64_t n, float *out) {
    int64_t kept = 0, i = 0;
    const __m256 zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 c = _mm256_loadu_ps(counts + i);
        const __m256 q = _mm256_div_ps(_mm256_loadu_ps(sums + i), c);
        const __m256 covered = _mm256_cmp_ps(c, zero, _CMP_GT_OQ);
        const __m256 x = _mm256_and_ps(q, covered);  // q where count > 0, +0 elsewhere: the Swift loop's select
        _mm256_storeu_ps(sums + i, x);
        const unsigned mask = (unsigned)_mm256_movemask_ps(covered);
        const int k = __builtin_popcount(mask);
        _mm256_maskstore_ps(out + kept, first(k), pack(x, mask));
        kept += k;
    }
    for (; i < n; i++) {
        const float c = counts[i], q = sums[i] / c;
        const float x = c > 0 ? q : 0;
        sums[i] = x;
        if (c > 0) out[kept++] = x;
    }
    return kept;
}

__attribute__((target("avx2,bmi2")))
static int bands_avx2(const float *buf, int64_t m, const float *bounds, float *band0, float *band1, int64_t capacity,
                      int64_t *sizes, int64_t *below) {
    const __m256 a0 = _mm256_set1_ps(bounds[0]), b0 = _mm256_set1_ps(bounds[1]);
    const __m256 a1 = _mm256_set1_ps(bounds[2]), b1 = _mm256_set1_ps(bounds[3]);
    int64_t n0 = 0, n1 = 0, under0 = 0, under1 = 0, i = 0;
    for (; i + 8 <= m; i += 8) {
        const __m256 x = _mm256_loadu_ps(buf + i);
        under0 += __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(x, a0, _CMP_LT_OQ)));
        under1 += __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(x, a1, _CMP_LT_OQ)));
        const unsigned in0 = (unsigned)_mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(x, a0, _CMP_GE_OQ), _mm256_cmp_ps(x, b0, _CMP_LE_OQ)));
        const unsigned in1 = (unsigned)_mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(x, a1, _CMP_GE_OQ), _mm256_cmp_ps(x, b1, _CMP_LE_OQ)));
        if (in0) {
            const int k = __builtin_popcount(in0);
            if (n0 + k > capacity) return 0;
            _mm256_maskstore_ps(band0 + n0, first(k), pack(x, in0));
            n0 += k;
        }
        if (in1) {
            const int k = __builtin_popcount(in1);
            if (n1 + k > capacity) return 0;
            _mm256_maskstore_ps(band1 + n1, first(k), pack(x, in1));
            n1 += k;
        }
    }
    for (; i < m; i++) {
        const float x = buf[i];
        under0 += x < bounds[0];
        under1 += x < bounds[2];
        if (x >= bounds[0] && x <= bounds[1]) {
            if (n0 == capacity) return 0;
            band0[n0++] = x;
        }
        if (x >= bounds[2] && x <= bounds[3]) {
            if (n1 == capacity) return 0;
            band1[n1++] = x;
        }
    }
    sizes[0] = n0;
    sizes[1] = n1;
    below[0] = under0;
    below[1] = under1;
    return 1;
}
#endif

int64_t cf_means(float *sums, const float *counts, int64_t n, float *out) {
#if defined(__x86_64__)
    if (cf_avx2_enabled() && cc_cpu_bmi2()) return means_avx2(sums, counts, n, out);
#endif
    (void)sums; (void)counts; (void)n; (void)out;
    return -1;
}

int cf_bands(const float *values, int64_t count, const float *bounds, float *band0, float *band1, int64_t capacity,
             int64_t *sizes, int64_t *below) {
#if defined(__x86_64__)
    if (cf_avx2_enabled() && cc_cpu_bmi2()) return bands_avx2(values, count, bounds, band0, band1, capacity, sizes, below) ? 1 : 0;
#endif
    (void)values; (void)count; (void)bounds; (void)band0; (void)band1; (void)capacity; (void)sizes; (void)below;
    return -1;
}
