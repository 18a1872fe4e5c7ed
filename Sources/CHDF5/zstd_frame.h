#ifndef CHDF5_ZSTD_FRAME_H
#define CHDF5_ZSTD_FRAME_H
/* Internal to CHDF5: the one place the shards' zstd frame parameters are set, shared by the HDF5
 * filter and the direct chunk encoder so that both produce the same bytes. */
#include <stddef.h>
#include <zstd.h>

/** Compresses `src` into one zstd frame (content size + content checksum) at `level` with `cctx`;
 *  returns the frame size or a zstd error code (check with ZSTD_isError). */
size_t fz_compress_frame(ZSTD_CCtx *cctx, void *dst, size_t capacity, const void *src, size_t nbytes, int level);
#endif
