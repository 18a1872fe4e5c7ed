// The resampler's voxel loop (issue 20: 22 % of a cold ingest). ChannelResampler.swift had it in Swift, where every
// Double → Int conversion is checked and every slice's bounds were converted per voxel; here the same arithmetic, in the
// same order, without those checks. Each voxel of the plane takes the bilinear in-plane samples of the slices around
// it and interpolates between them by its distance to each; see ChannelResampler for the rules at gaps and edges.
#include "cfusion.h"
#include "ccore.h"

#include <math.h>

// Bit-exact with the Swift loop: no a·b + c fused into one rounding.
#pragma STDC FP_CONTRACT OFF

// Swift.min and Swift.max for Double, exactly (they differ from fmin/fmax at signed zeros).
static inline double swift_min(double x, double y) { return y < x ? y : x; }
static inline double swift_max(double x, double y) { return y >= x ? y : x; }
static inline int64_t imin(int64_t x, int64_t y) { return y < x ? y : x; }
static inline int64_t imax(int64_t x, int64_t y) { return y >= x ? y : x; }

// Bilinear sample of slice k at column w (row terms in `terms`); NaN outside the slice's pixel-centre hull.
static inline float sample(const cf_stack *s, const double *terms, int64_t k, double w) {
    const double *p = s->projections + 12 * k;
    const double r = (terms[3 * k] + p[2] * w) + p[3];
    const double c = (terms[3 * k + 1] + p[6] * w) + p[7];
    const int64_t nr = s->rows[k], nc = s->columns[k];
    if (!(r >= 0 && c >= 0 && r <= (double)(nr - 1) && c <= (double)(nc - 1))) return NAN;
    const int64_t r0 = imin((int64_t)r, imax(nr - 2, 0)), c0 = imin((int64_t)c, imax(nc - 2, 0));
    const int64_t r1 = imin(r0 + 1, nr - 1), c1 = imin(c0 + 1, nc - 1);
    const float fr = (float)(r - (double)r0), fc = (float)(c - (double)c0);
    const float *base = s->pixels + s->starts[k];
    const float *top = base + r0 * nc, *bottom = base + r1 * nc;
    const float a = top[c0], b = top[c1], e = bottom[c0], f = bottom[c1];
    return (a + (b - a) * fc) + ((e + (f - e) * fc) - (a + (b - a) * fc)) * fr;
}

static inline double distance(const cf_stack *s, const double *terms, int64_t k, double w) {
    const double *p = s->projections + 12 * k;
    return (terms[3 * k + 2] + p[10] * w) + p[11];
}

// One voxel: the scalar rules. `k` carries the slice below the previous voxel's offset. Returns 1 when it covered the voxel.
static inline int voxel(const cf_stack *s, const double *terms, double t_row, int64_t wi, int64_t *slice, float *sum, float *count) {
    const double *t = s->offset_projection, *offs = s->offsets;
    const int64_t last = s->slices - 1;
    const double w = (double)wi;
    const double tv = (t_row + t[2] * w) + t[3];
    if (!(tv >= s->lowest && tv <= s->highest)) return 0;
    int64_t k = *slice;
    while (k < last && offs[k + 1] <= tv) k++;
    while (k >= 0 && offs[k] > tv) k--;
    *slice = k;
    float v = NAN;
    if (k < 0) {
        v = sample(s, terms, 0, w);
    } else if (k == last) {
        v = sample(s, terms, last, w);
    } else if (offs[k + 1] - offs[k] <= s->max_gap) {
        const float a = sample(s, terms, k, w), b = sample(s, terms, k + 1, w);
        const double da = distance(s, terms, k, w), db = distance(s, terms, k + 1, w);
        if (isfinite(a) && isfinite(b)) {
            const double span = da - db;
            const float f = span > 1e-9 ? (float)swift_min(swift_max(da / span, 0), 1) : 0.5f;
            v = a + (b - a) * f;
        } else if (isfinite(a) && fabs(da) <= s->reach) {
            v = a;
        } else if (isfinite(b) && fabs(db) <= s->reach) {
            v = b;
        }
    } else if (tv - offs[k] <= s->reach) {
        v = sample(s, terms, k, w);
    } else if (offs[k + 1] - tv <= s->reach) {
        v = sample(s, terms, k + 1, w);
    }
    if (!isfinite(v)) return 0;
    sum[wi] += v;
    count[wi] += 1;
    return 1;
}

static int64_t row_scalar(const cf_stack *s, const double *terms, double t_row, int64_t w_begin, int64_t w_end, float *sum, float *count) {
    int64_t k = -1, covered = 0;
    for (int64_t wi = w_begin; wi < w_end; wi++) covered += voxel(s, terms, t_row, wi, &k, sum, count);
    return covered;
}

#if defined(__x86_64__)
#include <immintrin.h>

// Bilinear samples of slice k at four columns; 0 when any lies outside the slice's pixel-centre hull (the caller then
// takes those voxels one at a time). The operations of `sample`, lane by lane.
__attribute__((target("avx2")))
static inline int sample4(const cf_stack *s, const double *terms, int64_t k, __m256d w, __m128 *out) {
    const double *p = s->projections + 12 * k;
    const __m256d r = _mm256_add_pd(_mm256_add_pd(_mm256_set1_pd(terms[3 * k]), _mm256_mul_pd(_mm256_set1_pd(p[2]), w)), _mm256_set1_pd(p[3]));
    const __m256d c = _mm256_add_pd(_mm256_add_pd(_mm256_set1_pd(terms[3 * k + 1]), _mm256_mul_pd(_mm256_set1_pd(p[6]), w)), _mm256_set1_pd(p[7]));
    const int64_t nr = s->rows[k], nc = s->columns[k];
    const __m256d zero = _mm256_setzero_pd();
    const __m256d inside = _mm256_and_pd(
        _mm256_and_pd(_mm256_cmp_pd(r, zero, _CMP_GE_OQ), _mm256_cmp_pd(c, zero, _CMP_GE_OQ)),
        _mm256_and_pd(_mm256_cmp_pd(r, _mm256_set1_pd((double)(nr - 1)), _CMP_LE_OQ),
                      _mm256_cmp_pd(c, _mm256_set1_pd((double)(nc - 1)), _CMP_LE_OQ)));
    if (_mm256_movemask_pd(inside) != 0xF) return 0;
    const __m128i r0 = _mm_min_epi32(_mm256_cvttpd_epi32(r), _mm_set1_epi32((int)imax(nr - 2, 0)));
    const __m128i c0 = _mm_min_epi32(_mm256_cvttpd_epi32(c), _mm_set1_epi32((int)imax(nc - 2, 0)));
    const __m128i r1 = _mm_min_epi32(_mm_add_epi32(r0, _mm_set1_epi32(1)), _mm_set1_epi32((int)(nr - 1)));
    const __m128i c1 = _mm_min_epi32(_mm_add_epi32(c0, _mm_set1_epi32(1)), _mm_set1_epi32((int)(nc - 1)));
    const __m128 fr = _mm256_cvtpd_ps(_mm256_sub_pd(r, _mm256_cvtepi32_pd(r0)));
    const __m128 fc = _mm256_cvtpd_ps(_mm256_sub_pd(c, _mm256_cvtepi32_pd(c0)));
    const float *base = s->pixels + s->starts[k];
    const __m128i width = _mm_set1_epi32((int)nc);
    const __m128i top = _mm_mullo_epi32(r0, width), bottom = _mm_mullo_epi32(r1, width);
    __m128 a, b, e, f;
    if (nc >= 2 && nr >= 2) {
        // Columns c0 and c1 = c0 + 1 are neighbours, and so are a row's two taps: one 8-byte load each, four per row
        // of taps, instead of four gathers (the same values).
        int32_t t[4], u[4];
        _mm_storeu_si128((__m128i *)t, _mm_add_epi32(top, c0));
        _mm_storeu_si128((__m128i *)u, _mm_add_epi32(bottom, c0));
        const __m128 t01 = _mm_castpd_ps(_mm_loadh_pd(_mm_load_sd((const double *)(base + t[0])), (const double *)(base + t[1])));
        const __m128 t23 = _mm_castpd_ps(_mm_loadh_pd(_mm_load_sd((const double *)(base + t[2])), (const double *)(base + t[3])));
        const __m128 u01 = _mm_castpd_ps(_mm_loadh_pd(_mm_load_sd((const double *)(base + u[0])), (const double *)(base + u[1])));
        const __m128 u23 = _mm_castpd_ps(_mm_loadh_pd(_mm_load_sd((const double *)(base + u[2])), (const double *)(base + u[3])));
        a = _mm_shuffle_ps(t01, t23, _MM_SHUFFLE(2, 0, 2, 0));
        b = _mm_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 1, 3, 1));
        e = _mm_shuffle_ps(u01, u23, _MM_SHUFFLE(2, 0, 2, 0));
        f = _mm_shuffle_ps(u01, u23, _MM_SHUFFLE(3, 1, 3, 1));
    } else {
        a = _mm_i32gather_ps(base, _mm_add_epi32(top, c0), 4);
        b = _mm_i32gather_ps(base, _mm_add_epi32(top, c1), 4);
        e = _mm_i32gather_ps(base, _mm_add_epi32(bottom, c0), 4);
        f = _mm_i32gather_ps(base, _mm_add_epi32(bottom, c1), 4);
    }
    const __m128 upper = _mm_add_ps(a, _mm_mul_ps(_mm_sub_ps(b, a), fc));
    const __m128 lower = _mm_add_ps(e, _mm_mul_ps(_mm_sub_ps(f, e), fc));
    *out = _mm_add_ps(upper, _mm_mul_ps(_mm_sub_ps(lower, upper), fr));
    return 1;
}

__attribute__((target("avx2")))
static inline __m256d distance4(const cf_stack *s, const double *terms, int64_t k, __m256d w) {
    const double *p = s->projections + 12 * k;
    return _mm256_add_pd(_mm256_add_pd(_mm256_set1_pd(terms[3 * k + 2]), _mm256_mul_pd(_mm256_set1_pd(p[10]), w)), _mm256_set1_pd(p[11]));
}

__attribute__((target("avx2")))
static inline int all_finite(__m128 x) {
    const __m128 magnitude = _mm_andnot_ps(_mm_set1_ps(-0.0f), x);
    return _mm_movemask_ps(_mm_cmp_ps(magnitude, _mm_set1_ps(INFINITY), _CMP_LT_OQ)) == 0xF;
}

// Four covered voxels: their values added to the sums, 1 to their counts.
__attribute__((target("avx2")))
static inline void add4(float *sum, float *count, __m128 v) {
    _mm_storeu_ps(sum, _mm_add_ps(_mm_loadu_ps(sum), v));
    _mm_storeu_ps(count, _mm_add_ps(_mm_loadu_ps(count), _mm_set1_ps(1)));
}

// The row four voxels at a time where all four lie between the same two slices, inside both slices' hulls, with
// a gap narrow enough to interpolate across and finite samples (the common case), or all four before the first slice
// or past the last; any other voxel, one at a time by `voxel`. Lane for lane the same operations as `voxel`'s, so the
// same bits.
__attribute__((target("avx2")))
static int64_t row_avx2(const cf_stack *s, const double *terms, double t_row, int64_t w_begin, int64_t w_end, float *sum, float *count) {
    const double *t = s->offset_projection, *offs = s->offsets;
    const int64_t last = s->slices - 1;
    int64_t k = -1, covered = 0, wi = w_begin;
    const __m256d step = _mm256_set_pd(3, 2, 1, 0);
    while (wi < w_end) {
        if (wi + 4 > w_end) { covered += voxel(s, terms, t_row, wi, &k, sum, count); wi++; continue; }
        const __m256d w = _mm256_add_pd(_mm256_set1_pd((double)wi), step);
        const __m256d tv = _mm256_add_pd(_mm256_add_pd(_mm256_set1_pd(t_row), _mm256_mul_pd(_mm256_set1_pd(t[2]), w)), _mm256_set1_pd(t[3]));
        double tvs[4];
        _mm256_storeu_pd(tvs, tv);
        // The slice below the first voxel, walked as `voxel` walks it.
        int64_t j = k;
        if (tvs[0] >= s->lowest && tvs[0] <= s->highest) {
            while (j < last && offs[j + 1] <= tvs[0]) j++;
            while (j >= 0 && offs[j] > tvs[0]) j--;
        }
        // Before the first slice or past the last (within reach): all four take that slice's sample.
        if (j < 0 || j == last) {
            int edge = 1;
            for (int i = 0; edge && i < 4; i++)
                edge = tvs[i] >= s->lowest && tvs[i] <= s->highest && (j < 0 ? tvs[i] < offs[0] : tvs[i] >= offs[last]);
            __m128 v;
            if (edge && sample4(s, terms, j < 0 ? 0 : last, w, &v) && all_finite(v)) {
                add4(sum + wi, count + wi, v);
                covered += 4;
                k = j;
                wi += 4;
                continue;
            }
        }
        int uniform = j >= 0 && j < last && offs[j + 1] - offs[j] <= s->max_gap;
        for (int i = 0; uniform && i < 4; i++)
            uniform = tvs[i] >= s->lowest && tvs[i] <= s->highest && offs[j] <= tvs[i] && tvs[i] < offs[j + 1];
        __m128 a, b;
        if (uniform && sample4(s, terms, j, w, &a) && sample4(s, terms, j + 1, w, &b) && all_finite(a) && all_finite(b)) {
            const __m256d da = distance4(s, terms, j, w), db = distance4(s, terms, j + 1, w);
            const __m256d span = _mm256_sub_pd(da, db);
            const int spread = _mm256_movemask_pd(_mm256_cmp_pd(span, _mm256_set1_pd(1e-9), _CMP_GT_OQ));
            if (spread == 0xF || spread == 0) {
                __m128 f = _mm_set1_ps(0.5f);
                if (spread == 0xF) {
                    __m256d x = _mm256_div_pd(da, span);
                    const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1);
                    x = _mm256_blendv_pd(x, zero, _mm256_cmp_pd(zero, x, _CMP_GE_OQ));  // swift_max(x, 0)
                    x = _mm256_blendv_pd(x, one, _mm256_cmp_pd(one, x, _CMP_LT_OQ));   // swift_min(x, 1)
                    f = _mm256_cvtpd_ps(x);
                }
                const __m128 v = _mm_add_ps(a, _mm_mul_ps(_mm_sub_ps(b, a), f));
                if (all_finite(v)) {
                    add4(sum + wi, count + wi, v);
                    covered += 4;
                    k = j;
                    wi += 4;
                    continue;
                }
            }
        }
        covered += voxel(s, terms, t_row, wi, &k, sum, count);
        wi++;
    }
    return covered;
}
#endif

static int use_vectors = 1;

void cf_use_vectors(int enabled) { use_vectors = enabled; }

// Whether the vector paths run (box.c's too): AVX2 present and not turned off.
int cf_avx2_enabled(void) {
#if defined(__x86_64__)
    return use_vectors && cc_cpu_avx2();
#else
    return 0;
#endif
}

int cf_vectors_available(void) {
#if defined(__x86_64__)
    return cc_cpu_avx2();
#else
    return 0;
#endif
}

// The voxels of a row whose offset along the normal, (t_row + t[2]·w) + t[3], lies in [lowest, highest]: the only ones
// `voxel` does not turn away at its first test. That offset is monotonic in w (each correctly rounded step is), so they
// are one run [*lo, *hi) of [w_begin, w_end), found by binary search on the same expression: the same voxels, without
// visiting the others. A thin tilted axial stack's box holds about five times as many voxels as its slab (issue 20).
static void row_bounds(const cf_stack *s, double t_row, int64_t *lo, int64_t *hi) {
    const double *t = s->offset_projection;
    int64_t a = s->w_begin, b = s->w_end;
#define OFFSET(wi) ((t_row + t[2] * (double)(wi)) + t[3])
    if (!isfinite(t_row) || !isfinite(t[2]) || !isfinite(t[3])) { *lo = a; *hi = b; return; }
    // Rising offsets: first w at or above lowest, then first above highest. Falling: first at or below highest, then first below lowest.
    const int rising = t[2] >= 0;
    int64_t x = a, y = b;
    while (x < y) {
        const int64_t m = x + (y - x) / 2;
        const double v = OFFSET(m);
        if (rising ? v >= s->lowest : v <= s->highest) y = m; else x = m + 1;
    }
    int64_t first = x;
    y = b;
    while (x < y) {
        const int64_t m = x + (y - x) / 2;
        const double v = OFFSET(m);
        if (rising ? v > s->highest : v < s->lowest) y = m; else x = m + 1;
    }
#undef OFFSET
    *lo = first;
    *hi = x;
}

int64_t cf_resample_plane(const cf_stack *s, int64_t di, float *sum, float *count, double *terms) {
    const double d = (double)di;
    const double *t = s->offset_projection;
    int64_t covered = 0;
#if defined(__x86_64__)
    const int vectors = use_vectors && cc_cpu_avx2();
#endif
    for (int64_t hi = s->h_begin; hi < s->h_end; hi++) {
        const double h = (double)hi;
        const int64_t row = ((di - s->d_origin) * s->grid_h + (hi - s->h_origin)) * s->grid_w;
        const double t_row = t[0] * d + t[1] * h;
        // The reference (use_vectors off) visits every voxel of the row, as before the bounds.
        int64_t w_lo = s->w_begin, w_hi = s->w_end;
        if (use_vectors) row_bounds(s, t_row, &w_lo, &w_hi);
        if (w_lo >= w_hi) continue;
        for (int64_t k = 0; k < s->slices; k++) {
            const double *p = s->projections + 12 * k;
            terms[3 * k] = p[0] * d + p[1] * h;
            terms[3 * k + 1] = p[4] * d + p[5] * h;
            terms[3 * k + 2] = p[8] * d + p[9] * h;
        }
#if defined(__x86_64__)
        if (vectors) { covered += row_avx2(s, terms, t_row, w_lo, w_hi, sum + row, count + row); continue; }
#endif
        covered += row_scalar(s, terms, t_row, w_lo, w_hi, sum + row, count + row);
    }
    return covered;
}
