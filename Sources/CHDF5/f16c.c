/*
 * float → IEEE half conversion with F16C (vcvtps2ph, round to nearest even: the same bits as Swift's Float16(_:)),
 * 8 values an instruction, for the fused volume's normalisation (issue 20: the scalar conversion was a software
 * call per voxel). Detected at run time; without F16C the caller converts in Swift.
 */
#include "chdf5.h"
#include "ccore.h"
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

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
    if (!cc_cpu_f16c()) return 0;
    to_half_f16c(in, out, n);
    return 1;
}
#else
int ch5_float_to_half(const float *in, uint16_t *out, size_t n) {
    (void)in; (void)out; (void)n;
    return 0;
}
#endif
