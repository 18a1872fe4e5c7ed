#include "cpng.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

int fp_write_png(const char *path, const uint8_t *pixels, int width, int height, int channels, char *error, int error_len) {
    if (channels != 1 && channels != 3) { snprintf(error, error_len, "unsupported channel count %d", channels); return -1; }
    FILE *fp = fopen(path, "wb");
    if (!fp) { snprintf(error, error_len, "cannot open %s for writing", path); return -1; }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) { fclose(fp); snprintf(error, error_len, "libpng: out of memory"); return -1; }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        snprintf(error, error_len, "libpng failed writing %s", path);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * width * channels));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(fp) != 0) { snprintf(error, error_len, "cannot close %s", path); return -1; }
    return 0;
}
