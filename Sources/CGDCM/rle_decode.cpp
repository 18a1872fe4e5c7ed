// DICOM RLE Lossless (PS3.5 Annex G) decoded here rather than by GDCM's RLE codec, which measured
// several times slower than dcm2niix. A frame is one fragment: a 64-byte header (segment count,
// then 15 segment offsets, little endian) followed by PackBits segments, one per byte plane, the most
// significant byte plane of each sample first. Every length in the header is checked before use.
#include "cgdcm.h"
#include "shim_common.hpp"

#include <cstring>
#include <string>

namespace {
uint32_t le32(const uint8_t *p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

/// Decodes one PackBits segment [src, src + n) into `count` bytes written `stride` bytes apart.
/// Returns an empty string on success, else what is wrong.
std::string unpack(const uint8_t *src, size_t n, uint8_t *out, size_t count, size_t stride) {
    size_t i = 0, o = 0;
    while (o < count) {
        if (i >= n) {
            return "segment ends after " + std::to_string(o) + " of " + std::to_string(count) + " bytes";
        }
        const int8_t h = static_cast<int8_t>(src[i++]);
        if (h >= 0) {
            const size_t len = size_t(h) + 1;
            if (o + len > count) return "a literal run overruns the segment's " + std::to_string(count) + " bytes";
            if (i + len > n) return "a literal run reads past the end of the segment";
            if (stride == 1) {
                std::memcpy(out + o, src + i, len);
            } else {
                for (size_t k = 0; k < len; k++) out[(o + k) * stride] = src[i + k];
            }
            i += len;
            o += len;
        } else if (h != -128) {
            const size_t len = size_t(1 - h);
            if (o + len > count) return "a repeat run overruns the segment's " + std::to_string(count) + " bytes";
            if (i >= n) return "a repeat run has no byte to repeat";
            const uint8_t v = src[i++];
            if (stride == 1) {
                std::memset(out + o, v, len);
            } else {
                for (size_t k = 0; k < len; k++) out[(o + k) * stride] = v;
            }
            o += len;
        }
    }
    // Bytes left over are the even-length padding of the segment (or of the fragment).
    return "";
}
}  // namespace

extern "C" int64_t gd_rle_decode_frame(const uint8_t *fragment, uint64_t length, int rows, int columns, int samples,
                                       int bits_allocated, uint8_t *out, uint64_t capacity) {
    GD_PROTECT(
        if (rows <= 0 || columns <= 0 || samples <= 0 || bits_allocated <= 0 || bits_allocated % 8 != 0) {
            fuse3d::set_last_error("RLE: invalid frame description");
            return -1;
        }
        const size_t bytes = size_t(bits_allocated) / 8;
        const size_t pixels = size_t(rows) * size_t(columns);
        const size_t planes = bytes * size_t(samples);
        const size_t total = pixels * planes;
        if (capacity < total) {
            fuse3d::set_last_error("RLE: output buffer too small");
            return -1;
        }
        if (length < 64) {
            fuse3d::set_last_error("RLE: fragment of " + std::to_string(length) + " bytes has no 64-byte header");
            return -1;
        }
        const uint32_t segments = le32(fragment);
        if (segments < 1 || segments > 15) {
            fuse3d::set_last_error("RLE: header declares " + std::to_string(segments) + " segments (1 to 15 allowed)");
            return -1;
        }
        if (segments != planes) {
            fuse3d::set_last_error("RLE: header declares " + std::to_string(segments) + " segments, but " +
                                   std::to_string(samples) + " sample(s) of " + std::to_string(bits_allocated) +
                                   " bits need " + std::to_string(planes));
            return -1;
        }
        uint32_t offsets[16];
        for (uint32_t s = 0; s < segments; s++) offsets[s] = le32(fragment + 4 + 4 * s);
        offsets[segments] = static_cast<uint32_t>(length > 0xFFFFFFFFu ? 0xFFFFFFFFu : length);
        for (uint32_t s = 0; s < segments; s++) {
            if (offsets[s] < 64 || offsets[s] >= length || offsets[s + 1] < offsets[s]) {
                fuse3d::set_last_error("RLE: segment " + std::to_string(s + 1) + " offset " + std::to_string(offsets[s]) +
                                       " lies outside the fragment's " + std::to_string(length) + " bytes or out of order");
                return -1;
            }
        }
        for (uint32_t s = 0; s < segments; s++) {
            // Segment s is byte (s % bytes) of sample (s / bytes), most significant first; the output is
            // pixel-interleaved little-endian samples.
            const size_t sample = s / bytes, byte = bytes - 1 - (s % bytes);
            std::string err = unpack(fragment + offsets[s], offsets[s + 1] - offsets[s], out + sample * bytes + byte, pixels, planes);
            if (!err.empty()) {
                fuse3d::set_last_error("RLE: segment " + std::to_string(s + 1) + ": " + err);
                return -1;
            }
        }
        return static_cast<int64_t>(total);
    )
    return -1;
}
