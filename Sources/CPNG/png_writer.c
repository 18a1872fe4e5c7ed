#include "cpng.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing buffer that libpng's write callback appends to. */
typedef struct {
    uint8_t *data;
    size_t length, capacity;
    int failed;
} png_buffer;

static void append(png_structp png, png_bytep bytes, png_size_t count) {
    png_buffer *b = (png_buffer *)png_get_io_ptr(png);
    if (b->failed) return;
    if (b->length + count > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (capacity < b->length + count) capacity *= 2;
        uint8_t *grown = realloc(b->data, capacity);
        if (!grown) { b->failed = 1; return; }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, bytes, count);
    b->length += count;
}

static void flush(png_structp png) { (void)png; }

int fp_encode_png(const uint8_t *pixels, int width, int height, int channels, uint8_t **out, size_t *out_len,
                  char *error, int error_len) {
    *out = NULL;
    *out_len = 0;
    if (channels != 1 && channels != 3) { snprintf(error, error_len, "unsupported channel count %d", channels); return -1; }
    png_buffer buffer = {NULL, 0, 0, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        snprintf(error, error_len, "libpng: out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(buffer.data);
        snprintf(error, error_len, "libpng failed encoding the picture");
        return -1;
    }
    png_set_write_fn(png, &buffer, append, flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * width * channels));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (buffer.failed) {
        free(buffer.data);
        snprintf(error, error_len, "out of memory encoding the picture");
        return -1;
    }
    *out = buffer.data;
    *out_len = buffer.length;
    return 0;
}

void fp_free(uint8_t *buffer) { free(buffer); }
