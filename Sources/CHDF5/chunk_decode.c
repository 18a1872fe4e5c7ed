/*
 * Decoding of one stored chunk of the shards' [shuffle, zstd] pipeline outside HDF5, so that readers
 * can fetch raw chunks (H5Dread_chunk, under HDF5's global lock) and decompress them on their own
 * threads in parallel. Each thread keeps one zstd context and one scratch buffer, freed at thread exit.
 */
#include "chdf5.h"
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

typedef struct {
    ZSTD_DCtx *dctx;
    uint8_t *scratch;
    size_t capacity;
} decode_state;

static pthread_key_t state_key;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static void free_state(void *p) {
    decode_state *s = (decode_state *)p;
    ZSTD_freeDCtx(s->dctx);
    free(s->scratch);
    free(s);
}

static void make_key(void) { pthread_key_create(&state_key, free_state); }

static decode_state *thread_state(size_t need) {
    pthread_once(&state_once, make_key);
    decode_state *s = pthread_getspecific(state_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        s->dctx = ZSTD_createDCtx();
        pthread_setspecific(state_key, s);
        if (!s->dctx) return NULL;
    }
    if (s->capacity < need) {
        uint8_t *grown = realloc(s->scratch, need);
        if (!grown) return NULL;
        s->scratch = grown;
        s->capacity = need;
    }
    return s;
}

/* HDF5's shuffle stores byte j of every element together: in[j * n + i] = element i's byte j. */
static void unshuffle(const uint8_t *in, uint8_t *out, size_t nbytes, size_t elem_size) {
    size_t n = nbytes / elem_size;
    if (elem_size == 2) {
        const uint8_t *lo = in, *hi = in + n;
        for (size_t i = 0; i < n; i++) {
            out[2 * i] = lo[i];
            out[2 * i + 1] = hi[i];
        }
    } else {
        for (size_t j = 0; j < elem_size; j++)
            for (size_t i = 0; i < n; i++) out[i * elem_size + j] = in[j * n + i];
    }
    memcpy(out + n * elem_size, in + n * elem_size, nbytes - n * elem_size);
}

const char *fz_decode_shuffled_zstd(const void *src, size_t src_size, void *dst, size_t dst_size, size_t elem_size) {
    if (elem_size == 0) return "element size 0";
    decode_state *s = thread_state(dst_size);
    if (!s || !s->dctx) return "out of memory";
    size_t n = ZSTD_decompressDCtx(s->dctx, s->scratch, dst_size, src, src_size);
    if (ZSTD_isError(n)) return ZSTD_getErrorName(n);
    if (n != dst_size) return "decoded chunk has the wrong size";
    if (elem_size == 1) memcpy(dst, s->scratch, n);
    else unshuffle(s->scratch, (uint8_t *)dst, n, elem_size);
    return NULL;
}
