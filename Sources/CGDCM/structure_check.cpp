#include "structure_check.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {
constexpr uint32_t kUndefined = 0xFFFFFFFFu;
constexpr int kMaxDepth = 32;

/// The file's bytes as the walk needs them: a window of at most 32 KiB read with pread, moved forward as the walk
/// goes. The walk reads headers and skips values by their lengths, so a file of uncompressed slices is one read of
/// its first 32 KiB. (It mapped the file until issue 20: each munmap made the kernel interrupt the other core to
/// flush its TLB while two workers ran, two or three maps per file.)
struct Window {
    int fd;
    size_t size;
    std::vector<uint8_t> &buffer;
    size_t start = 0, length = 0;
    /// False once a read failed or came back short (the file shrank): the walk's result does not count.
    bool readable = true;

    /// The bytes [at, at + n) with n <= 12 and at + n <= size (the walk checks both before it reads).
    const uint8_t *at(size_t at, size_t n) {
        if (at >= start && at + n <= start + length) return buffer.data() + (at - start);
        const size_t want = std::min(buffer.size(), size - at);
        size_t got = 0;
        while (got < want) {
            const ssize_t r = pread(fd, buffer.data() + got, want - got, off_t(at + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += size_t(r);
        }
        start = at;
        length = got;
        if (got < n) {
            readable = false;
            static const uint8_t zeros[16] = {};
            return zeros;
        }
        return buffer.data();
    }

    /// n bytes from `at` into a string (values longer than the window included).
    std::string string(size_t at, size_t n) {
        std::string out;
        for (size_t done = 0; done < n;) {
            const size_t step = std::min<size_t>(8, n - done);
            out.append(reinterpret_cast<const char *>(this->at(at + done, step)), step);
            done += step;
        }
        return out;
    }
};

struct Walker {
    Window &data;
    size_t size;
    bool explicit_vr;
    bool big_endian;
    std::string error;
    /// Declared length of the top-level Pixel Data element: -2 absent, -1 encapsulated (undefined length).
    int64_t pixel_length = -2;

    uint16_t u16(size_t at, bool be) const {
        const uint8_t *d = data.at(at, 2);
        return be ? uint16_t(d[0] << 8 | d[1]) : uint16_t(d[0] | d[1] << 8);
    }
    uint32_t u32(size_t at, bool be) const {
        const uint8_t *d = data.at(at, 4);
        return be ? (uint32_t(d[0]) << 24 | uint32_t(d[1]) << 16 | uint32_t(d[2]) << 8 | d[3])
                  : (uint32_t(d[0]) | uint32_t(d[1]) << 8 | uint32_t(d[2]) << 16 | uint32_t(d[3]) << 24);
    }

    bool fail(uint16_t g, uint16_t e, const char *what, uint64_t claimed, uint64_t left) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "element (%04X,%04X) %s %llu bytes but only %llu remain", g, e, what,
                      (unsigned long long)claimed, (unsigned long long)left);
        error = buf;
        return false;
    }

    static bool known_vr(const char vr[2]) {
        static const char *vrs[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD",
                                    "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI",
                                    "UL", "UN", "UR", "US", "UT", "UV"};
        for (const char *v : vrs)
            if (vr[0] == v[0] && vr[1] == v[1]) return true;
        return false;
    }

    static bool long_vr(const char vr[2]) {
        static const char *vrs[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"};
        for (const char *v : vrs)
            if (vr[0] == v[0] && vr[1] == v[1]) return true;
        return false;
    }

    /// Walks elements in [pos, end); `until_delimiter` stops at the item delimiter (FFFE,E00D).
    bool elements(size_t &pos, size_t end, bool expl, bool be, int depth, bool until_delimiter) {
        if (depth > kMaxDepth) { error = "sequences nested deeper than 32 levels"; return false; }
        while (pos < end) {
            if (end - pos < 8) {
                char buf[96];
                std::snprintf(buf, sizeof buf, "%zu stray bytes at offset %zu", end - pos, pos);
                error = buf;
                return false;
            }
            const uint16_t g = u16(pos, be), e = u16(pos + 2, be);
            if (g == 0xFFFE) {  // item and delimiter tags are always tag + 4-byte length
                const uint32_t len = u32(pos + 4, be);
                pos += 8;
                // A delimiter has no value (PS3.5 7.5): GDCM reads a claimed length as a fragment and allocates it.
                if ((e == 0xE00D || e == 0xE0DD) && len != 0) return fail(g, e, "is a delimiter claiming", len, end - pos);
                if (e == 0xE00D && until_delimiter) return true;
                if (e == 0xE00D || e == 0xE0DD) continue;
                return fail(g, e, "is an item outside a sequence claiming", len, end - pos);
            }
            uint32_t len;
            bool sequence_like = false, fragments = false;
            const uint8_t *vr_bytes = data.at(pos + 4, 2);
            const char vr[2] = {char(vr_bytes[0]), char(vr_bytes[1])};
            bool inner_expl = expl;
            // Writers sometimes put an implicit-VR element into an explicit data set; GDCM reads
            // those, so an element without a known VR is measured the implicit way.
            if (expl && known_vr(vr)) {
                if (long_vr(vr)) {
                    if (end - pos < 12) return fail(g, e, "header needs", 12, end - pos);
                    len = u32(pos + 8, be);
                    pos += 12;
                } else {
                    len = u16(pos + 6, be);
                    pos += 8;
                }
                sequence_like = vr[0] == 'S' && vr[1] == 'Q';
                if (len == kUndefined && !sequence_like) {
                    fragments = g == 0x7FE0;
                    sequence_like = !fragments;
                    inner_expl = fragments;  // UN of undefined length holds an implicit-VR sequence
                }
            } else {
                len = u32(pos + 4, be);
                pos += 8;
                if (len == kUndefined) {
                    fragments = g == 0x7FE0;
                    sequence_like = !fragments;
                }
            }
            if (depth == 0 && g == 0x7FE0 && e == 0x0010) pixel_length = len == kUndefined ? -1 : int64_t(len);
            if (len == kUndefined) {
                if (!items(pos, end, g, e, inner_expl, be, depth + 1, fragments)) return false;
                continue;
            }
            if (len > end - pos) {
                if (g == 0x7FE0 && e == 0x0010) return fail(g, e, "(Pixel Data, truncated) claims", len, end - pos);
                return fail(g, e, "claims", len, end - pos);
            }
            if (sequence_like) {
                size_t inner = pos;
                if (!items(inner, pos + len, g, e, inner_expl, be, depth + 1, false)) return false;
            }
            pos += len;
        }
        if (until_delimiter) { error = "item without its delimiter"; return false; }
        return true;
    }

    /// Walks the items of a sequence (or fragments of encapsulated pixel data) in [pos, end).
    bool items(size_t &pos, size_t end, uint16_t sg, uint16_t se, bool expl, bool be, int depth, bool fragments) {
        if (depth > kMaxDepth) { error = "sequences nested deeper than 32 levels"; return false; }
        while (pos < end) {
            if (end - pos < 8) return fail(sg, se, "has an item header that needs", 8, end - pos);
            const uint16_t g = u16(pos, be), e = u16(pos + 2, be);
            const uint32_t len = u32(pos + 4, be);
            pos += 8;
            if (g != 0xFFFE) return fail(sg, se, "holds a non-item tag instead of an item; the item claims", len, end - pos);
            if ((e == 0xE0DD || e == 0xE00D) && len != 0) return fail(g, e, "is a delimiter claiming", len, end - pos);
            if (e == 0xE0DD) return true;  // sequence delimiter
            if (e != 0xE000) return fail(sg, se, "has an unexpected delimiter; it claims", len, end - pos);
            if (len == kUndefined) {
                if (fragments) return fail(sg, se, "has a fragment of undefined length; it claims", len, end - pos);
                if (!elements(pos, end, expl, be, depth + 1, true)) return false;
                continue;
            }
            if (len > end - pos) return fail(sg, se, fragments ? "has a fragment that claims" : "has an item that claims", len, end - pos);
            if (!fragments) {
                size_t inner = pos;
                if (!elements(inner, pos + len, expl, be, depth + 1, false)) return false;
            }
            pos += len;
        }
        return true;  // a defined-length sequence ends with its bytes
    }
};
}  // namespace

bool fuse3d::check_structure(const std::string &path, std::string &error, int64_t &pixel_length, std::string &transfer_syntax) {
    pixel_length = -2;
    transfer_syntax.clear();
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) { error = "cannot open file"; return false; }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size == 0) { ::close(fd); error = "empty file (0 bytes)"; return false; }
    const size_t size = static_cast<size_t>(st.st_size);
    thread_local std::vector<uint8_t> buffer(32 << 10);
    Window window{fd, size, buffer};
    struct Closer { int fd; ~Closer() { ::close(fd); } } closer{fd};
    Walker w{window, size, true, false, {}};
    size_t pos = 0;
    bool ok = true;
    bool deflated = false;
    if (size >= 132 && std::memcmp(window.at(128, 4), "DICM", 4) == 0) {
        pos = 132;
        // File meta group: explicit VR little endian; read it element by element for the transfer syntax.
        std::string ts;
        while (pos + 8 <= size && w.u16(pos, false) == 0x0002) {
            const uint16_t e = w.u16(pos + 2, false);
            const uint8_t *vr_bytes = window.at(pos + 4, 2);
            const char vr[2] = {char(vr_bytes[0]), char(vr_bytes[1])};
            size_t header = 8;
            uint32_t len = w.u16(pos + 6, false);
            if (Walker::long_vr(vr)) {
                if (pos + 12 > size) { ok = w.fail(2, e, "header needs", 12, size - pos); break; }
                len = w.u32(pos + 8, false);
                header = 12;
            }
            if (len > size - pos - header) { ok = w.fail(2, e, "claims", len, size - pos - header); break; }
            if (e == 0x0010) {
                ts = window.string(pos + header, len);
                while (!ts.empty() && (ts.back() == '\0' || ts.back() == ' ')) ts.pop_back();
            }
            pos += header + len;
        }
        if (ok) {
            deflated = ts == "1.2.840.10008.1.2.1.99";
            transfer_syntax = ts;
            w.explicit_vr = ts != "1.2.840.10008.1.2";
            w.big_endian = ts == "1.2.840.10008.1.2.2";
        }
    } else if (size < 8) {
        error = window.readable ? "not a DICOM file: only " + std::to_string(size) + " bytes" : "cannot read file";
        return false;
    } else {
        // No preamble: a bare data set. Explicit VR when bytes 4-5 are a VR; big endian when the
        // first group reads small only that way round.
        const uint8_t *d = window.at(0, 8);
        const char vr[2] = {char(d[4]), char(d[5])};
        w.explicit_vr = Walker::known_vr(vr);
        w.big_endian = d[0] == 0 && d[1] != 0;
    }
    if (pos == 0 && size >= 8) {
        // Without the DICM marker a file must at least start like a data set: group 0002 or 0008.
        const uint8_t *d = window.at(0, 8);
        const uint16_t group = w.big_endian ? uint16_t(d[0] << 8 | d[1]) : uint16_t(d[0] | d[1] << 8);
        if (group != 0x0002 && group != 0x0008) {
            error = window.readable ? "not a DICOM file: no DICM marker at byte 128, and the first bytes are not a DICOM element"
                                    : "cannot read file";
            return false;
        }
    }
    if (ok && !deflated) ok = w.elements(pos, size, w.explicit_vr, w.big_endian, 0, false);
    if (!window.readable) {
        error = "cannot read file (a read failed, or the file shrank while it was read)";
        pixel_length = -2;
        return false;
    }
    if (!ok) error = w.error;
    pixel_length = deflated ? -1 : w.pixel_length;
    return ok;
}
