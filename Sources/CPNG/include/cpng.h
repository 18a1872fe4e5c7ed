#ifndef CPNG_H
#define CPNG_H
#include <stdint.h>
/** Writes an 8-bit PNG (channels 1 = grey, 3 = RGB) through libpng; returns 0, or -1 with `error` filled. */
int fp_write_png(const char *path, const uint8_t *pixels, int width, int height, int channels, char *error, int error_len);
#endif
