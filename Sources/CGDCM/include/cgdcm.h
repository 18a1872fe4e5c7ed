#ifndef CGDCM_H
#define CGDCM_H
/*
 * C API over GDCM, in the style of tch-rs' torch_api.h: opaque handles with a matching *_free,
 * no C++ exception crosses this boundary, failures return NULL / -1 and leave a message in a
 * thread-local last error that the caller drains with gd_last_error().
 * GDCM's own warnings never reach stderr: they are collected per file (gd_file_warnings).
 */
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/** GDCM's version string, e.g. "3.0.21" (static storage). */
const char *gd_version(void);

/** The calling thread's last error (malloc'd; free with gd_string_free), or NULL if none. Clears it. */
char *gd_last_error(void);

/** Frees a string returned by this API. */
void gd_string_free(char *s);

/** Raises glibc's mmap and trim thresholds so that large decode buffers are reused (process-wide). */
void gd_reuse_large_buffers(void);

/** A parsed DICOM file: its data set, and its pixel data when opened with pixels. */
typedef struct gd_file_s *gd_file;

/**
 * Parses `path`. With `with_pixels` = 0 reading stops before Pixel Data (a fast header scan);
 * with 1 the pixel data is read too (not yet decoded); with 2 it is read only when the transfer syntax
 * is one fuse3d decodes from the data set itself (uncompressed little endian, RLE Lossless, JPEG-LS),
 * which never reach GDCM's image reader, and reading stops before it otherwise (gd_file_has_pixels
 * tells which). NULL on failure (see gd_last_error).
 */
gd_file gd_file_open(const char *path, int with_pixels);

/** 1 when `f` was read with its pixel data (gd_file_decode may be called), else 0. */
int gd_file_has_pixels(gd_file f);

/** Frees a file opened by gd_file_open. */
void gd_file_free(gd_file f);

/** Transfer syntax UID of the data set (malloc'd), or NULL. */
char *gd_file_transfer_syntax(gd_file f);

/** GDCM warnings collected while parsing and decoding this file (malloc'd, possibly empty). */
char *gd_file_warnings(gd_file f);

/**
 * Value of a top-level element as text (multi-valued elements joined by '\'; binary VRs such as
 * US converted to decimal). NULL when the element is absent; "" when present but empty.
 */
char *gd_file_string(gd_file f, uint16_t group, uint16_t element);

/**
 * Value of element (group, element) inside the first item of sequence (seq_group, seq_element) of
 * frame `frame`'s Per-frame Functional Groups item, falling back to the Shared Functional Groups
 * (enhanced multi-frame objects). NULL when neither holds it.
 */
char *gd_file_frame_string(gd_file f, int frame, uint16_t seq_group, uint16_t seq_element,
                           uint16_t group, uint16_t element);

/**
 * Declared byte length of the top-level Pixel Data element, read from the file's structure without
 * decoding: -2 when there is none, -1 when it is encapsulated (compressed fragments) or deflated.
 */
int64_t gd_file_pixel_data_length(gd_file f);

/** 1 when the data set holds a Pixel Data element (7FE0,0010), else 0. */
int gd_file_has_pixel_data(gd_file f);

/**
 * Decodes every frame (file opened with pixels) into `out` as real values: stored value (masked to
 * BitsStored, sign-extended when signed) × slope + intercept, frames consecutive, rows row-major.
 * `capacity` is the number of floats `out` holds; it must be ≥ rows × columns × frames.
 * Checks the pixel data against Rows × Columns × frames before decoding (truncation, absurd sizes,
 * colour). Returns the number of values written, or -1 with the last error set.
 */
int64_t gd_file_decode(gd_file f, double slope, double intercept, float *out, int64_t capacity);

/**
 * gd_file_decode with a rescale per frame (enhanced multi-frame objects carry a Pixel Value Transformation
 * per frame): frame k uses slopes[j] and intercepts[j], j = min(k, count - 1); `count` ≥ 1.
 */
int64_t gd_file_decode_frames(gd_file f, const double *slopes, const double *intercepts, int64_t count, float *out,
                              int64_t capacity);

/**
 * Decodes one RLE Lossless frame (PS3.5 Annex G: one fragment, a 64-byte header of segment offsets,
 * PackBits segments, most significant byte plane first) into `out` as pixel-interleaved little-endian
 * samples (rows x columns x samples x bits_allocated/8 bytes). Refuses headers that lie (segment count
 * other than samples x bytes or above 15, offsets outside the fragment or out of order) and runs that
 * overrun a segment. Returns the bytes written, or -1 with the last error set.
 */
int64_t gd_rle_decode_frame(const uint8_t *fragment, uint64_t length, int rows, int columns, int samples,
                            int bits_allocated, uint8_t *out, uint64_t capacity);

/**
 * Decodes one JPEG-LS frame (one fragment) with CharLS into `out` as little-endian samples (rows x columns x
 * bits_allocated/8 bytes), greyscale only. Returns the bytes written; -2 when the frame is not one this
 * path decodes byte for byte (colour, another matrix, a precision the allocation does not match: GDCM's
 * codec decodes or refuses it then); -1 with the last error set for a broken stream.
 */
int64_t gd_jpegls_decode_frame(const uint8_t *fragment, uint64_t length, int rows, int columns, int samples,
                               int bits_allocated, uint8_t *out, uint64_t capacity);

/**
 * The file's pixel data as raw bytes (every frame, little-endian samples, as GDCM's Image::GetBuffer
 * gives them). `decoder` 0: GDCM's codecs; 1: fuse3d's own paths (its RLE decoder for RLE Lossless, CharLS
 * called directly for JPEG-LS; other files, or frames those paths do not take, are an error).
 * With `out` NULL returns the byte count needed. Returns the bytes written, or -1 with the last error set.
 */
int64_t gd_file_pixel_bytes(gd_file f, int decoder, uint8_t *out, int64_t capacity);

/**
 * Checks one compressed frame's own header against what the DICOM header says (issue 32): JPEG SOF, JPEG-LS SOF55,
 * JPEG 2000 SIZ (raw or in a JP2 box) or the RLE segment table, chosen by `transfer_syntax`. Returns 1 when the frame
 * decodes to exactly rows x columns x samples samples of at most bits_allocated bits; 0 with the reason in `error`
 * (NUL-terminated, cut to `error_size`); 1 for a transfer syntax it does not parse. Reads at most `length` bytes.
 */
int gd_check_frame_header(const char *transfer_syntax, const uint8_t *data, uint64_t length, int rows, int columns,
                          int samples, int bits_allocated, char *error, int error_size);

#ifdef __cplusplus
}
#endif
#endif
