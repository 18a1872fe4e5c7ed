// The resampler's voxel loop (issue 20: 22 % of a cold ingest). ChannelResampler.swift had it in Swift, where every
// Double → Int conversion is checked and every slice's bounds were converted per voxel; here the same arithmetic, in the
// same order, without those checks. Each voxel of the plane takes the bilinear in-plane samples of the slices around
// it and interpolates between them by its distance to each; see ChannelResampler for the rules at gaps and edges.
#include "cfusion.h"

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

int64_t cf_resample_plane(const cf_stack *s, int64_t di, float *sum, float *count, double *terms) {
    const double d = (double)di;
    const double *t = s->offset_projection, *offs = s->offsets;
    const int64_t last = s->slices - 1;
    int64_t covered = 0;
    for (int64_t hi = s->h_begin; hi < s->h_end; hi++) {
        const double h = (double)hi;
        const int64_t row = (di * s->grid_h + hi) * s->grid_w;
        for (int64_t k = 0; k < s->slices; k++) {
            const double *p = s->projections + 12 * k;
            terms[3 * k] = p[0] * d + p[1] * h;
            terms[3 * k + 1] = p[4] * d + p[5] * h;
            terms[3 * k + 2] = p[8] * d + p[9] * h;
        }
        const double t_row = t[0] * d + t[1] * h;
        // k: the last slice at or below tv (−1 before the first), walked from the previous voxel's.
        int64_t k = -1;
        for (int64_t wi = s->w_begin; wi < s->w_end; wi++) {
            const double w = (double)wi;
            const double tv = (t_row + t[2] * w) + t[3];
            if (!(tv >= s->lowest && tv <= s->highest)) continue;
            while (k < last && offs[k + 1] <= tv) k++;
            while (k >= 0 && offs[k] > tv) k--;
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
            if (isfinite(v)) {
                sum[row + wi] += v;
                count[row + wi] += 1;
                covered++;
            }
        }
    }
    return covered;
}
