// A compressed frame's own header against the DICOM header, before a decoder sees it (issue 32).
//
// GDCM sizes its output buffer from Rows x Columns x BitsAllocated and its codecs (OpenJPEG, libjpeg, CharLS) write
// what the codestream says: a JPEG 2000 codestream of 160x160 under Rows 17 wrote ~50 kB past the end of the heap
// buffer. Each family's frame header is small and fixed, so it is parsed here from the fragment's first bytes and
// compared with what the buffer was sized for; anything that disagrees, or does not parse, never reaches a decoder.
#include "codestream_check.hpp"
#include "cgdcm.h"

#include <algorithm>
#include <cstdio>

namespace fuse3d {
namespace {
uint16_t be16(const uint8_t *p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t *p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
uint32_t le32(const uint8_t *p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

std::string dims(int64_t columns, int64_t rows) { return std::to_string(columns) + "x" + std::to_string(rows); }

/// Rows, Columns, samples and precision from a frame header against the DICOM header.
bool compare(const char *family, int64_t columns, int64_t rows, int components, int precision, const FrameExpectation &e,
             std::string &error) {
    if (columns != e.columns || rows != e.rows) {
        error = std::string(family) + " codestream is " + dims(columns, rows) + " pixels, the header says " +
                dims(e.columns, e.rows) + " (Columns x Rows)";
        return false;
    }
    if (components != e.samples) {
        error = std::string(family) + " codestream has " + std::to_string(components) + " component(s), the header says " +
                std::to_string(e.samples) + " sample(s) per pixel";
        return false;
    }
    if (precision < 1 || precision > 16) {
        error = std::string(family) + " codestream has a precision of " + std::to_string(precision) + " bits (1 to 16 are read)";
        return false;
    }
    const int bytes = precision <= 8 ? 1 : 2;
    if (bytes * 8 > e.bits_allocated) {
        error = std::string(family) + " codestream holds " + std::to_string(precision) + "-bit samples, more than BitsAllocated " +
                std::to_string(e.bits_allocated);
        return false;
    }
    return true;
}

/// JPEG (ITU T.81) and JPEG-LS (T.87): the marker segments after SOI up to the first frame header.
bool check_jpeg(bool ls, const uint8_t *d, size_t n, const FrameExpectation &e, std::string &error) {
    const char *family = ls ? "JPEG-LS" : "JPEG";
    if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) {
        error = std::string(family) + " frame does not start with SOI";
        return false;
    }
    size_t pos = 2;
    for (int segments = 0; segments < 4096; segments++) {
        while (pos < n && d[pos] == 0xFF && pos + 1 < n && d[pos + 1] == 0xFF) pos++;  // fill bytes
        if (pos + 2 > n || d[pos] != 0xFF) break;
        const uint8_t m = d[pos + 1];
        pos += 2;
        if ((m >= 0xD0 && m <= 0xD7) || m == 0x01) continue;  // standalone markers
        if (m == 0xD9 || m == 0xDA) {
            error = std::string(family) + " frame has no frame header before its scan";
            return false;
        }
        if (pos + 2 > n) break;
        const size_t length = be16(d + pos);
        if (length < 2 || pos + length > n) {
            error = std::string(family) + " marker segment length " + std::to_string(length) + " runs past its fragment";
            return false;
        }
        const bool sof = ls ? m == 0xF7 : (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC);
        if (ls && m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            error = "JPEG-LS transfer syntax but the frame is a JPEG (ITU T.81) codestream";
            return false;
        }
        if (!ls && m == 0xF7) {
            error = "JPEG transfer syntax but the frame is a JPEG-LS codestream";
            return false;
        }
        if (sof) {
            if (length < 8) {
                error = std::string(family) + " frame header is " + std::to_string(length) + " bytes long";
                return false;
            }
            const int precision = d[pos + 2];
            const int64_t rows = be16(d + pos + 3), columns = be16(d + pos + 5);
            const int components = d[pos + 7];
            if (rows == 0) {
                error = std::string(family) + " frame header leaves its number of lines to a later DNL marker";
                return false;
            }
            if (length != size_t(8 + 3 * components)) {
                error = std::string(family) + " frame header of " + std::to_string(length) + " bytes for " +
                        std::to_string(components) + " component(s)";
                return false;
            }
            return compare(family, columns, rows, components, precision, e, error);
        }
        pos += length;
    }
    error = std::string(family) + " frame ends before its frame header";
    return false;
}

/// JPEG 2000 (ISO 15444-1): the SIZ segment of a raw codestream, or of the contiguous codestream box of a JP2 file.
bool check_jpeg2000(const uint8_t *d, size_t n, const FrameExpectation &e, std::string &error) {
    static const uint8_t signature[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};
    size_t pos = 0;
    if (n >= 12 && std::equal(signature, signature + 12, d)) {
        // JP2 boxes: LBox (0: to the end, 1: an 8-byte XLBox follows), TBox; the codestream is the 'jp2c' box.
        bool found = false;
        for (int boxes = 0; boxes < 256 && pos + 8 <= n; boxes++) {
            uint64_t length = be32(d + pos);
            const uint32_t type = be32(d + pos + 4);
            size_t header = 8;
            if (length == 1) {
                if (pos + 16 > n) break;
                length = uint64_t(be32(d + pos + 8)) << 32 | be32(d + pos + 12);
                header = 16;
            } else if (length == 0) {
                length = n - pos;
            }
            if (length < header || length > n - pos) {
                error = "JPEG 2000 (JP2) box length " + std::to_string(length) + " runs past its fragment";
                return false;
            }
            if (type == 0x6A703263) {  // 'jp2c'
                pos += header;
                found = true;
                break;
            }
            pos += size_t(length);
        }
        if (!found) {
            error = "JPEG 2000 (JP2) file has no codestream box";
            return false;
        }
    }
    const uint8_t *c = d + pos;
    const size_t m = n - pos;
    if (m < 4 || be16(c) != 0xFF4F || be16(c + 2) != 0xFF51) {
        error = "JPEG 2000 codestream does not start with SOC and SIZ";
        return false;
    }
    if (m < 4 + 40) {
        error = "JPEG 2000 SIZ segment is cut short";
        return false;
    }
    const uint8_t *s = c + 4;
    const size_t lsiz = be16(s);
    const uint32_t xsiz = be32(s + 4), ysiz = be32(s + 8), xo = be32(s + 12), yo = be32(s + 16);
    const uint32_t xt = be32(s + 20), yt = be32(s + 24), xto = be32(s + 28), yto = be32(s + 32);
    const int components = be16(s + 36);
    if (components < 1 || lsiz != size_t(38 + 3 * components) || 4 + lsiz > m) {
        error = "JPEG 2000 SIZ segment of " + std::to_string(lsiz) + " bytes for " + std::to_string(components) +
                " component(s) does not fit its fragment";
        return false;
    }
    if (xo >= xsiz || yo >= ysiz || xt == 0 || yt == 0 || xto > xo || yto > yo || uint64_t(xto) + xt <= xo ||
        uint64_t(yto) + yt <= yo) {
        error = "JPEG 2000 SIZ segment has an inconsistent image or tile grid";
        return false;
    }
    const uint64_t tiles = (uint64_t(xsiz - xto) + xt - 1) / xt * ((uint64_t(ysiz - yto) + yt - 1) / yt);
    if (tiles > 65536) {
        error = "JPEG 2000 codestream claims " + std::to_string(tiles) + " tiles (at most 65536 are read)";
        return false;
    }
    int precision = 0;
    for (int k = 0; k < components; k++) {
        const uint8_t *comp = s + 38 + 3 * k;
        const int p = (comp[0] & 0x7F) + 1;
        if (k == 0) precision = p;
        if (p != precision || comp[1] != 1 || comp[2] != 1) {
            error = "JPEG 2000 component " + std::to_string(k) + " is subsampled or of another precision";
            return false;
        }
    }
    return compare("JPEG 2000", int64_t(xsiz - xo), int64_t(ysiz - yo), components, precision, e, error);
}

/// RLE Lossless (PS3.5 Annex G): the 64-byte header of segment offsets.
bool check_rle(const uint8_t *d, size_t n, const FrameExpectation &e, std::string &error) {
    if (n < 64) {
        error = "RLE frame is shorter than its 64-byte header";
        return false;
    }
    const uint32_t segments = le32(d);
    const uint32_t expected = uint32_t(e.samples) * uint32_t(e.bits_allocated / 8);
    if (e.bits_allocated % 8 != 0 || segments != expected || segments > 15 || segments == 0) {
        error = "RLE header has " + std::to_string(segments) + " segment(s), the header's samples and BitsAllocated need " +
                std::to_string(expected);
        return false;
    }
    uint32_t previous = 0;
    for (uint32_t k = 0; k < segments; k++) {
        const uint32_t offset = le32(d + 4 + 4 * k);
        if ((k == 0 && offset != 64) || offset < previous || offset >= n) {
            error = "RLE segment " + std::to_string(k) + " starts at offset " + std::to_string(offset) + " (fragment of " +
                    std::to_string(n) + " bytes)";
            return false;
        }
        previous = offset;
    }
    return true;
}
}  // namespace

Codestream codestream_of(const std::string &ts) {
    if (ts == "1.2.840.10008.1.2.4.50" || ts == "1.2.840.10008.1.2.4.51" || ts == "1.2.840.10008.1.2.4.57" ||
        ts == "1.2.840.10008.1.2.4.70")
        return Codestream::jpeg;
    if (ts == "1.2.840.10008.1.2.4.80" || ts == "1.2.840.10008.1.2.4.81") return Codestream::jpegls;
    if (ts == "1.2.840.10008.1.2.4.90" || ts == "1.2.840.10008.1.2.4.91") return Codestream::jpeg2000;
    if (ts == "1.2.840.10008.1.2.5") return Codestream::rle;
    return Codestream::none;
}

bool starts_frame(Codestream kind, const uint8_t *d, size_t n) {
    switch (kind) {
    case Codestream::jpeg:
    case Codestream::jpegls: return n >= 2 && d[0] == 0xFF && d[1] == 0xD8;
    case Codestream::jpeg2000:
        return (n >= 2 && d[0] == 0xFF && d[1] == 0x4F) || (n >= 8 && be32(d) == 12 && be32(d + 4) == 0x6A502020);
    default: return false;
    }
}

bool check_frame_header(Codestream kind, const uint8_t *data, size_t length, const FrameExpectation &expect,
                        std::string &error) {
    switch (kind) {
    case Codestream::jpeg: return check_jpeg(false, data, length, expect, error);
    case Codestream::jpegls: return check_jpeg(true, data, length, expect, error);
    case Codestream::jpeg2000: return check_jpeg2000(data, length, expect, error);
    case Codestream::rle: return check_rle(data, length, expect, error);
    case Codestream::none: return true;
    }
    return true;
}
}  // namespace fuse3d

extern "C" int gd_check_frame_header(const char *transfer_syntax, const uint8_t *data, uint64_t length, int rows, int columns,
                                     int samples, int bits_allocated, char *error, int error_size) {
    const fuse3d::FrameExpectation expect{rows, columns, samples, bits_allocated};
    std::string reason;
    if (fuse3d::check_frame_header(fuse3d::codestream_of(transfer_syntax ? transfer_syntax : ""), data, size_t(length), expect,
                                   reason))
        return 1;
    if (error && error_size > 0) std::snprintf(error, size_t(error_size), "%s", reason.c_str());
    return 0;
}
