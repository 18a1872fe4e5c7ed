/*
 * The Zstandard HDF5 filter (registered filter id 32015), compatible with hdf5plugin's and the
 * HDF Group's registered zstd plugin: cd_values[0] is the compression level and each chunk is
 * stored as one plain zstd frame (with its content size, so a reader sizes its buffer in one step).
 * Our frames also carry zstd's content checksum, so a corrupted chunk fails to decode instead of
 * yielding wrong voxels; readers that ignore checksums still decode them.
 */
#include "chdf5.h"
#include "zstd_frame.h"

static size_t compress_chunk(size_t cd_nelmts, const unsigned int cd_values[], size_t nbytes,
                             size_t *buf_size, void **buf) {
    int level = cd_nelmts > 0 ? (int)cd_values[0] : ZSTD_CLEVEL_DEFAULT;
    size_t bound = ZSTD_compressBound(nbytes);
    void *out = H5allocate_memory(bound, 0);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    size_t n = out && cctx ? fz_compress_frame(cctx, out, bound, *buf, nbytes, level) : 0;
    ZSTD_freeCCtx(cctx);
    if (n == 0 || ZSTD_isError(n)) {
        H5free_memory(out);
        return 0;
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = bound;
    return n;
}

/* A frame without a recorded content size (another writer's streaming mode): grow and stream. */
static size_t decompress_streaming(const void *in, size_t nbytes, size_t *buf_size, void **out_buf) {
    size_t cap = nbytes * 4 > 1 << 16 ? nbytes * 4 : 1 << 16;
    void *out = H5allocate_memory(cap, 0);
    ZSTD_DStream *ds = ZSTD_createDStream();
    if (!out || !ds) { H5free_memory(out); ZSTD_freeDStream(ds); return 0; }
    ZSTD_inBuffer input = {in, nbytes, 0};
    ZSTD_outBuffer output = {out, cap, 0};
    size_t rc = 1;
    while (rc != 0) {
        if (output.pos == output.size) {
            void *grown = H5resize_memory(output.dst, output.size * 2);
            if (!grown) break;
            output.dst = grown;
            output.size *= 2;
        }
        rc = ZSTD_decompressStream(ds, &output, &input);
        if (ZSTD_isError(rc) || (rc != 0 && input.pos == input.size && output.pos < output.size)) break;
    }
    ZSTD_freeDStream(ds);
    if (rc != 0) { H5free_memory(output.dst); return 0; }
    *out_buf = output.dst;
    *buf_size = output.size;
    return output.pos;
}

static size_t decompress_chunk(size_t nbytes, size_t *buf_size, void **buf) {
    unsigned long long size = ZSTD_getFrameContentSize(*buf, nbytes);
    if (size == ZSTD_CONTENTSIZE_ERROR) return 0;
    void *out = NULL;
    size_t n = 0, cap = 0;
    if (size == ZSTD_CONTENTSIZE_UNKNOWN) {
        n = decompress_streaming(*buf, nbytes, &cap, &out);
        if (n == 0) return 0;
    } else {
        cap = size > 0 ? (size_t)size : 1;
        out = H5allocate_memory(cap, 0);
        if (!out) return 0;
        n = ZSTD_decompress(out, cap, *buf, nbytes);
        if (ZSTD_isError(n) || n != size) { H5free_memory(out); return 0; }
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = cap;
    return n;
}

static size_t zstd_filter(unsigned int flags, size_t cd_nelmts, const unsigned int cd_values[],
                          size_t nbytes, size_t *buf_size, void **buf) {
    if (flags & H5Z_FLAG_REVERSE) return decompress_chunk(nbytes, buf_size, buf);
    return compress_chunk(cd_nelmts, cd_values, nbytes, buf_size, buf);
}

static const H5Z_class2_t zstd_class = {
    H5Z_CLASS_T_VERS, (H5Z_filter_t)FZ_ZSTD_FILTER_ID, 1, 1, "zstd", NULL, NULL, zstd_filter,
};

H5Z_filter_t fz_zstd_filter_id(void) { return FZ_ZSTD_FILTER_ID; }

int fz_register_zstd(void) {
    /* Registering again replaces the class with itself; H5Zfilter_avail is not asked first because
     * it would load a zstd plugin from HDF5_PLUGIN_PATH, which writes frames without checksums. */
    return H5Zregister(&zstd_class) < 0 ? -1 : 0;
}

const char *fz_zstd_version(void) { return ZSTD_versionString(); }
