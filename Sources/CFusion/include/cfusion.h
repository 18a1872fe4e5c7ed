#ifndef CFUSION_H
#define CFUSION_H
// The fusion's hot loops in C: the resampler's voxel loop (ChannelResampler.swift; resample.c), the box filter
// (StackLayout.smooth; box.c) and the percentiles' passes (RobustRange.swift; compact.c).
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A stack laid out for one grid (StackLayout): every array is read only. */
typedef struct {
    const float *pixels;         /* all slices' pixels, slice after slice, row-major */
    const double *projections;   /* per slice 12: row, column, distance as (d, h, w, constant) of the voxel index */
    const double *offsets;       /* each slice's offset along the stack normal, ascending */
    const double *offset_projection; /* (d, h, w, constant) of the voxel's offset along the normal */
    const int64_t *starts;       /* where each slice's pixels start */
    const int64_t *rows;
    const int64_t *columns;
    int64_t slices;
    double lowest, highest;      /* offsets the stack reaches: first − reach, last + reach */
    double max_gap;              /* widest gap interpolated across (mm) */
    double reach;                /* half a spacing */
    int64_t d_origin, h_origin;  /* the first plane and row the accumulators hold */
    int64_t grid_h, grid_w;      /* rows per plane the accumulators hold, and the grid's W */
    int64_t h_begin, h_end, w_begin, w_end; /* the voxel ranges the stack may cover */
} cf_stack;

/**
 * Resamples plane `d` of the grid from `stack`: adds each covered voxel's value to `sum` and 1 to `count`
 * (both indexed ((d − d_origin)·grid_h + h − h_origin)·W + w) and returns how many voxels it covered. `terms` is scratch for 3 × slices doubles.
 * Every value is bit for bit what ChannelResampler's Swift loop gave (same operations in the same order, no
 * contraction into fused multiply-adds).
 */
int64_t cf_resample_plane(const cf_stack *stack, int64_t d, float *sum, float *count, double *terms);

/** 1 when the CPU has AVX2, which cf_resample_plane then uses for four voxels at a time (same bits). */
int cf_vectors_available(void);

/**
 * With 0, cf_resample_plane takes every voxel of each row's range one at a time even with AVX2, and cf_box_filter,
 * cf_means and cf_bands do nothing: the reference paths tests compare the fast ones with. Process-wide.
 */
void cf_use_vectors(int enabled);

/** 1 when the vector paths run: AVX2 present and cf_use_vectors not turned off (the C files' shared test). */
int cf_avx2_enabled(void);

/**
 * StackLayout.smooth's box filter with AVX2: `out[r][c]` = the mean of the pixels within `radius_rows` rows and
 * `radius_columns` columns of (r, c) (those present at the edges), as running sums along each row and then down each
 * column, taken in the same order and with the same divisions and scales as the Swift loops: the same bits. The rows
 * are filtered eight at a time (in the lanes of one register) into a ring of rows the column pass reads while they are
 * in the cache. Returns 0, writing nothing, without AVX2 (or with cf_use_vectors(0)); the caller then runs its loops.
 */
int cf_box_filter(const float *pixels, float *out, int64_t rows, int64_t columns, int64_t radius_rows, int64_t radius_columns);

/**
 * RobustRange.percentiles(ofMeans:)'s pass with AVX2 and BMI2: each sum becomes sum / count where count > 0 and +0
 * elsewhere, and the covered means are written to `out` in order (room for n). Returns how many, or −1 (nothing
 * done) without AVX2 and BMI2 or with cf_use_vectors(0).
 */
int64_t cf_means(float *sums, const float *counts, int64_t n, float *out);

/**
 * RobustRange.twoPercentiles' pass over `count` values with AVX2 and BMI2: for bands j = 0, 1 with `bounds` (a0, b0, a1,
 * b1), the values v with aj ≤ v ≤ bj go in order to band j (room for `capacity`), `sizes[j]` says how many and
 * `below[j]` how many values are under aj. Returns 1; 0 when a band would hold more than `capacity` (the caller then
 * selects in the whole buffer); −1 (nothing done) without AVX2 and BMI2 or with cf_use_vectors(0).
 */
int cf_bands(const float *values, int64_t count, const float *bounds, float *band0, float *band1, int64_t capacity,
             int64_t *sizes, int64_t *below);

#ifdef __cplusplus
}
#endif
#endif
