// The row pass of the stack layout's box filter (StackLayout.smooth), eight rows at a time (issue 20: the row pass
// was 10 % of a cold ingest). A row's running sum is a chain of dependent adds, so the Swift loop keeps four rows'
// chains in flight, one scalar add each. Here eight rows' pixels are transposed into one vector per column (8 × 8
// tiles through the L1 cache), the eight chains advance in the lanes of one register, and the sums are transposed
// back. Each lane takes the Swift loop's operations in its order, so the values are the same bits.
#include "cfusion.h"

#include <stdlib.h>

#pragma STDC FP_CONTRACT OFF

static inline int64_t imin(int64_t x, int64_t y) { return y < x ? y : x; }
static inline int64_t imax(int64_t x, int64_t y) { return y >= x ? y : x; }

// How many pixels of a row the box around column c holds (fewer at the edges).
static inline float box_width(int64_t c, int64_t radius, int64_t columns) {
    return (float)(imin(c + radius, columns - 1) - imax(c - radius, 0) + 1);
}

// One row, as StackLayout.smooth's loop for the rows left over from its blocks.
static void row_scalar(const float *line, float *out, int64_t columns, int64_t radius) {
    const int64_t lower = imin(radius + 1, columns), upper = imax(lower, columns - radius);
    const float full = (float)(2 * radius + 1);
    float total = 0;
    for (int64_t c = 0; c < imin(radius, columns); c++) total += line[c];
    for (int64_t c = 0; c < columns; c++) {
        if (c >= lower && c < upper) {
            total += line[c + radius];
            total -= line[c - radius - 1];
            out[c] = total / full;
        } else {
            if (c + radius < columns) total += line[c + radius];
            if (c - radius - 1 >= 0) total -= line[c - radius - 1];
            out[c] = total / box_width(c, radius, columns);
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2")))
static inline void transpose8(__m256 *r) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Eight rows (`lines`, `outs`): `lanes` gets their pixels column by column (8 floats a column), and each group of eight
// columns' sums goes back to the eight rows of `outs` from registers.
__attribute__((target("avx2")))
static void rows8(const float *const *lines, float *const *outs, int64_t columns, int64_t radius, float *lanes) {
    int64_t c = 0;
    for (; c + 8 <= columns; c += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(lines[i] + c);
        transpose8(r);
        for (int j = 0; j < 8; j++) _mm256_store_ps(lanes + (c + j) * 8, r[j]);
    }
    for (; c < columns; c++)
        for (int i = 0; i < 8; i++) lanes[c * 8 + i] = lines[i][c];

    const int64_t lower = imin(radius + 1, columns), upper = imax(lower, columns - radius);
    const __m256 full = _mm256_set1_ps((float)(2 * radius + 1));
    __m256 total = _mm256_setzero_ps();
    for (c = 0; c < imin(radius, columns); c++) total = _mm256_add_ps(total, _mm256_load_ps(lanes + c * 8));
    __m256 sums[8];
    for (c = 0; c < columns; c++) {
        if (c >= lower && c < upper) {
            total = _mm256_add_ps(total, _mm256_load_ps(lanes + (c + radius) * 8));
            total = _mm256_sub_ps(total, _mm256_load_ps(lanes + (c - radius - 1) * 8));
            sums[c & 7] = _mm256_div_ps(total, full);
        } else {
            if (c + radius < columns) total = _mm256_add_ps(total, _mm256_load_ps(lanes + (c + radius) * 8));
            if (c - radius - 1 >= 0) total = _mm256_sub_ps(total, _mm256_load_ps(lanes + (c - radius - 1) * 8));
            sums[c & 7] = _mm256_div_ps(total, _mm256_set1_ps(box_width(c, radius, columns)));
        }
        if ((c & 7) == 7) {
            transpose8(sums);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(outs[i] + c - 7, sums[i]);
        }
    }
    const int64_t tail = columns & ~(int64_t)7;
    for (c = tail; c < columns; c++) {
        float lane[8];
        _mm256_storeu_ps(lane, sums[c & 7]);
        for (int i = 0; i < 8; i++) outs[i][c] = lane[i];
    }
}

// One output row of the column pass: `totals` takes the row entering the box and drops the one leaving it (either may
// be absent at the edges), and the row is the totals times 1 / (rows in the box), as StackLayout.smooth's loop.
__attribute__((target("avx2")))
static void column_step(float *totals, const float *entering, const float *leaving, float scale, float *out, int64_t columns) {
    const __m256 s = _mm256_set1_ps(scale);
    int64_t c = 0;
    if (entering && leaving) {
        for (; c + 8 <= columns; c += 8) {
            const __m256 t = _mm256_sub_ps(_mm256_add_ps(_mm256_loadu_ps(totals + c), _mm256_loadu_ps(entering + c)), _mm256_loadu_ps(leaving + c));
            _mm256_storeu_ps(totals + c, t);
            _mm256_storeu_ps(out + c, _mm256_mul_ps(t, s));
        }
        for (; c < columns; c++) { const float t = (totals[c] + entering[c]) - leaving[c]; totals[c] = t; out[c] = t * scale; }
    } else if (entering) {
        for (; c + 8 <= columns; c += 8) {
            const __m256 t = _mm256_add_ps(_mm256_loadu_ps(totals + c), _mm256_loadu_ps(entering + c));
            _mm256_storeu_ps(totals + c, t);
            _mm256_storeu_ps(out + c, _mm256_mul_ps(t, s));
        }
        for (; c < columns; c++) { const float t = totals[c] + entering[c]; totals[c] = t; out[c] = t * scale; }
    } else if (leaving) {
        for (; c + 8 <= columns; c += 8) {
            const __m256 t = _mm256_sub_ps(_mm256_loadu_ps(totals + c), _mm256_loadu_ps(leaving + c));
            _mm256_storeu_ps(totals + c, t);
            _mm256_storeu_ps(out + c, _mm256_mul_ps(t, s));
        }
        for (; c < columns; c++) { const float t = totals[c] - leaving[c]; totals[c] = t; out[c] = t * scale; }
    } else {
        for (; c + 8 <= columns; c += 8) _mm256_storeu_ps(out + c, _mm256_mul_ps(_mm256_loadu_ps(totals + c), s));
        for (; c < columns; c++) out[c] = totals[c] * scale;
    }
}

// Both passes, the rows' results kept in a ring of 2·radius_rows + 9 rows that the column pass reads while they are
// still in the cache: the image is read once and written once.
__attribute__((target("avx2")))
static int box_avx2(const float *pixels, float *out, int64_t rows, int64_t columns, int64_t radius_rows, int64_t radius_columns) {
    const int64_t ring = 2 * radius_rows + 9;
    float *scratch = aligned_alloc(32, (size_t)columns * (size_t)(8 + ring + 1) * sizeof(float) + 32);
    if (!scratch) return 0;
    float *lanes = scratch, *across = scratch + columns * 8, *totals = across + columns * ring;
#define ACROSS(r) (across + ((r) % ring) * columns)
    int64_t produced = 0;
    // Row-pass results up to row `last` (inclusive), eight rows at a time while eight are left.
#define PRODUCE(last)                                                                                         while (produced <= (last)) {                                                                                  if (produced + 8 <= rows) {                                                                                   const float *lines[8];                                                                                    float *outs[8];                                                                                           for (int i = 0; i < 8; i++) { lines[i] = pixels + (produced + i) * columns; outs[i] = ACROSS(produced + i); }             rows8(lines, outs, columns, radius_columns, lanes);                                                       produced += 8;                                                                                        } else {                                                                                                      row_scalar(pixels + produced * columns, ACROSS(produced), columns, radius_columns);                       produced++;                                                                                           }                                                                                                     }
    for (int64_t c = 0; c < columns; c++) totals[c] = 0;
    const int64_t first = imin(radius_rows, rows);
    if (first > 0) PRODUCE(first - 1);
    for (int64_t r = 0; r < first; r++) {
        const float *row = ACROSS(r);
        for (int64_t c = 0; c < columns; c++) totals[c] += row[c];
    }
    for (int64_t r = 0; r < rows; r++) {
        const float scale = 1 / (float)(imin(r + radius_rows, rows - 1) - imax(r - radius_rows, 0) + 1);
        if (r + radius_rows < rows) PRODUCE(r + radius_rows);
        const float *entering = r + radius_rows < rows ? ACROSS(r + radius_rows) : 0;
        const float *leaving = r - radius_rows - 1 >= 0 ? ACROSS(r - radius_rows - 1) : 0;
        column_step(totals, entering, leaving, scale, out + r * columns, columns);
    }
#undef PRODUCE
#undef ACROSS
    free(scratch);
    return 1;
}
#endif

int cf_box_filter(const float *pixels, float *out, int64_t rows, int64_t columns, int64_t radius_rows, int64_t radius_columns) {
#if defined(__x86_64__)
    if (!cf_avx2_enabled() || rows < 1 || columns < 1 || radius_rows < 0 || radius_columns < 0) return 0;
    return box_avx2(pixels, out, rows, columns, radius_rows, radius_columns);
#else
    (void)pixels; (void)out; (void)rows; (void)columns; (void)radius_rows; (void)radius_columns; (void)row_scalar;
    return 0;
#endif
}
