/*
 * float → IEEE half conversion with F16C (vcvtps2ph, round to nearest even: the same bits as Swift's Float16(_:)),
 * 8 values an instruction, for the fused volume's normalisation (issue 20: the scalar conversion was a software
 * call per voxel). Detected at run time; without F16C the caller converts in Swift.
 */
#include "chdf5.h"
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

static int f16c_supported(void) {
    static int cached = -1;
    if (cached < 0) {
        unsigned a, b, c, d;
        /* F16C (bit 29) and AVX (bit 28) with the OS saving YMM state (OSXSAVE, bit 27, and XCR0 bits 1-2). */
        int ok = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) && (c & (1u << 28)) && (c & (1u << 27));
        if (ok) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            ok = (lo & 6u) == 6u;
        }
        cached = ok;
    }
    return cached;
}

__attribute__((target("avx,f16c")))
static void to_half_f16c(const float *in, uint16_t *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(out + i), h);
    }
    for (; i < n; i++) {
        __m128i h = _mm_cvtps_ph(_mm_set_ss(in[i]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        out[i] = (uint16_t)_mm_extract_epi16(h, 0);
    }
}

int ch5_float_to_half(const float *in, uint16_t *out, size_t n) {
    if (!f16c_supported()) return 0;
    to_half_f16c(in, out, n);
    return 1;
}
#else
int ch5_float_to_half(const float *in, uint16_t *out, size_t n) {
    (void)in; (void)out; (void)n;
    return 0;
}
#endif
