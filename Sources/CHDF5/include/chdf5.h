#ifndef CHDF5_H
#define CHDF5_H
/*
 * HDF5's C API for Swift, in the style of swift-nio's CNIOLinux: the library's own header, plus
 * the macros Swift cannot import (they expand to global ids behind H5open()) re-exported as
 * functions with the prefix ch5_, and the Zstandard filter (HDF5 filter id 32015) with prefix fz_.
 */
/* Spelled with its Debian folder so that Swift modules importing this one need no -I flag. */
#if __has_include(<hdf5/serial/hdf5.h>)
#include <hdf5/serial/hdf5.h>
#else
#include <hdf5.h>
#endif
#include <stddef.h>
#include <stdint.h>

/* ---- Macro re-exports -------------------------------------------------------------------- */
/** H5P_DEFAULT. */
hid_t ch5_P_DEFAULT(void);
/** H5S_ALL. */
hid_t ch5_S_ALL(void);
/** H5S_UNLIMITED. */
hsize_t ch5_S_UNLIMITED(void);
/** H5T_VARIABLE (variable-length string size). */
size_t ch5_T_VARIABLE(void);
/** H5F_ACC_RDONLY. */
unsigned ch5_F_ACC_RDONLY(void);
/** H5F_ACC_TRUNC. */
unsigned ch5_F_ACC_TRUNC(void);
/** H5P_FILE_CREATE (property list class). */
hid_t ch5_P_FILE_CREATE(void);
/** H5P_FILE_ACCESS (property list class). */
hid_t ch5_P_FILE_ACCESS(void);
/** H5P_DATASET_CREATE (property list class). */
hid_t ch5_P_DATASET_CREATE(void);
/** H5T_NATIVE_INT8. */
hid_t ch5_T_NATIVE_INT8(void);
/** H5T_NATIVE_UINT8. */
hid_t ch5_T_NATIVE_UINT8(void);
/** H5T_NATIVE_INT64. */
hid_t ch5_T_NATIVE_INT64(void);
/** H5T_NATIVE_FLOAT. */
hid_t ch5_T_NATIVE_FLOAT(void);
/** H5T_NATIVE_DOUBLE. */
hid_t ch5_T_NATIVE_DOUBLE(void);
/** H5T_STD_I8LE. */
hid_t ch5_T_STD_I8LE(void);
/** H5T_STD_U8LE. */
hid_t ch5_T_STD_U8LE(void);
/** H5T_STD_I64LE. */
hid_t ch5_T_STD_I64LE(void);
/** H5T_IEEE_F32LE. */
hid_t ch5_T_IEEE_F32LE(void);
/** H5T_IEEE_F64LE. */
hid_t ch5_T_IEEE_F64LE(void);
/** H5T_C_S1. */
hid_t ch5_T_C_S1(void);

/**
 * A new little-endian IEEE binary16 datatype, laid out exactly as h5py's (and HDF5 1.14's
 * H5T_IEEE_F16LE): sign bit 15, exponent bits 10..14 (bias 15), mantissa bits 0..9.
 * HDF5 1.10 has no predefined float16. The caller closes it with H5Tclose. < 0 on failure.
 */
hid_t ch5_float16_le(void);

/* ---- Errors -------------------------------------------------------------------------------- */
/** Turns off HDF5's automatic error-stack printing for the calling thread (idempotent, cheap). */
void ch5_silence_errors(void);

/**
 * The calling thread's HDF5 error stack as one line ("function: message; ..."), malloc'd
 * (free with ch5_string_free), or NULL when the stack is empty. Clears the stack.
 */
char *ch5_take_error(void);

/** Frees a string returned by this API. */
void ch5_string_free(char *s);

/* ---- Zstandard filter ---------------------------------------------------------------------- */
/** The HDF5 registered filter id of Zstandard. */
#define FZ_ZSTD_FILTER_ID 32015

/** FZ_ZSTD_FILTER_ID as a function (Swift imports it either way; this one is typed). */
H5Z_filter_t fz_zstd_filter_id(void);

/**
 * Registers the Zstandard filter (id 32015, name "zstd", cd_values[0] = level) in this process;
 * each chunk is one plain zstd frame, as hdf5plugin's Zstd writes and reads. Idempotent.
 * Returns < 0 on failure.
 */
int fz_register_zstd(void);

/** The most bytes fz_encode_shuffled_zstd can produce for `nbytes` of input. */
size_t fz_encode_bound(size_t nbytes);

/**
 * Encodes one chunk for a [shuffle, zstd(level)] pipeline, exactly as the HDF5 filters would (the
 * result goes to H5Dwrite_chunk with filter mask 0): byte-shuffles `nbytes` of elements of
 * `elem_size` bytes, then writes one zstd frame (content size and checksum) into `dst`, which holds
 * `capacity` bytes (fz_encode_bound). Thread-safe (per-thread context); no HDF5 call.
 * Returns NULL and sets *written on success, else a static message.
 */
const char *fz_encode_shuffled_zstd(const void *src, size_t nbytes, size_t elem_size, int level,
                                    void *dst, size_t capacity, size_t *written);

/**
 * Decodes one raw chunk of a [shuffle, zstd] pipeline (as H5Dread_chunk returns it): decompresses the
 * zstd frame(s) in `src` and un-shuffles elements of `elem_size` bytes into `dst`, which must be
 * exactly the chunk's `dst_size` bytes. Thread-safe (per-thread context); no HDF5 call.
 * Returns NULL on success, else a static message (corrupt frame, checksum mismatch, wrong size).
 */
const char *fz_decode_shuffled_zstd(const void *src, size_t src_size, void *dst, size_t dst_size, size_t elem_size);

/** The linked libzstd's version, e.g. "1.5.4" (static storage). */
const char *fz_zstd_version(void);
/* ---- float → half with F16C (f16c.c) ---------------------------------------------------------- */
/** Converts `n` floats to IEEE half bit patterns (round to nearest even, as Swift's Float16(_:)) with F16C;
 *  returns 0 (and does nothing) when the CPU has no F16C, 1 when done. */
int ch5_float_to_half(const float *in, uint16_t *out, size_t n);

#endif
