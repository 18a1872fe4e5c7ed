#ifndef CPNG_H
#define CPNG_H
#include <stddef.h>
#include <stdint.h>
/** Encodes an 8-bit PNG (channels 1 = grey, 3 = RGB) through libpng into memory: on success returns 0 and sets
 *  `*out` (free it with fp_free) and `*out_len`; else returns -1 with `error` filled. The caller writes the bytes
 *  (atomically: Core's AtomicFile). */
int fp_encode_png(const uint8_t *pixels, int width, int height, int channels, uint8_t **out, size_t *out_len,
                  char *error, int error_len);
/** Frees what fp_encode_png returned. */
void fp_free(uint8_t *buffer);
#endif
