// The reading half of the GDCM shim: parse, query tags, decode pixels. See include/cgdcm.h.
#include "cgdcm.h"
#include "shim_common.hpp"
#include "structure_check.hpp"
#include "codestream_check.hpp"

#include <gdcmDataSet.h>
#include <gdcmFile.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmReader.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmStringFilter.h>
#include <gdcmTrace.h>
#include <gdcmVersion.h>

#include <malloc.h>
#include <unistd.h>
#include <cstdio>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <ostream>
#include <streambuf>
#include <set>
#include <string>
#include <vector>

namespace {
thread_local std::string t_last_error;
thread_local bool t_has_error = false;

// GDCM writes warnings to process-wide streams; this buffer sends them to the calling thread's
// string instead, so concurrent readers each collect their own file's warnings and stderr stays clean.
thread_local std::string t_trace;
class ThreadTraceBuffer : public std::streambuf {
  protected:
    int_type overflow(int_type ch) override {
        if (ch != traits_type::eof() && t_trace.size() < 65536) t_trace.push_back(static_cast<char>(ch));
        return ch == traits_type::eof() ? traits_type::not_eof(ch) : ch;
    }
    std::streamsize xsputn(const char *s, std::streamsize n) override {
        if (t_trace.size() < 65536) t_trace.append(s, static_cast<size_t>(n));
        return n;
    }
};

// OpenJPEG (under GDCM's JPEG 2000 codec) prints some errors with fprintf(stderr). The process's
// stderr stream is replaced once by an unbuffered one that hands text written while this thread is
// inside GDCM to the thread's trace, and passes everything else through to file descriptor 2.
thread_local bool t_inside_gdcm = false;

ssize_t stderr_write(void *, const char *buf, size_t n) {
    if (t_inside_gdcm) {
        if (t_trace.size() < 65536) t_trace.append(buf, n);
        return static_cast<ssize_t>(n);
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = ::write(2, buf + done, n - done);
        if (w <= 0) break;
        done += static_cast<size_t>(w);
    }
    return static_cast<ssize_t>(done);
}

/// Marks the calling thread as inside GDCM for the guard's lifetime.
struct InsideGDCM {
    InsideGDCM() { t_inside_gdcm = true; }
    ~InsideGDCM() { t_inside_gdcm = false; }
};

void capture_gdcm_trace() {
    static std::once_flag once;
    std::call_once(once, [] {
        cookie_io_functions_t io = {nullptr, stderr_write, nullptr, nullptr};
        if (FILE *routed = fopencookie(nullptr, "w", io)) {
            setvbuf(routed, nullptr, _IONBF, 0);
            stderr = routed;
        }
        static ThreadTraceBuffer buffer;
        static std::ostream stream(&buffer);
        gdcm::Trace::SetStream(stream);
        gdcm::Trace::SetWarningStream(stream);
        gdcm::Trace::SetErrorStream(stream);
        gdcm::Trace::SetDebugStream(stream);
        gdcm::Trace::SetDebug(false);
        gdcm::Trace::SetWarning(true);
        gdcm::Trace::SetError(true);
    });
}

// The largest decode we accept: 2^30 values (4 GiB of float). Anything larger is a lying header.
constexpr int64_t kMaxValues = int64_t(1) << 30;

// The collected trace as one line: GDCM's "Error: In <source file>, line N, function ..." location
// lines dropped, the messages joined with "; ".
std::string trimmed_trace() {
    std::string out, line;
    auto flush = [&] {
        while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
        const bool location = line.rfind("Error: In ", 0) == 0 || line.rfind("Warning: In ", 0) == 0 ||
                              line.rfind("Debug: In ", 0) == 0;
        if (!line.empty() && !location) out += (out.empty() ? "" : "; ") + line;
        line.clear();
    };
    for (char c : t_trace) {
        if (c == '\n') flush(); else line.push_back(c);
    }
    flush();
    return out;
}
}  // namespace

struct gd_file_s {
    std::string path;
    std::unique_ptr<gdcm::Reader> reader;  // an ImageReader when opened with pixels
    bool with_pixels = false;
    std::string warnings;
    gdcm::StringFilter filter;
    int64_t pixel_length = -2;  // from the structure walk; see gd_file_pixel_data_length
    // RLE Lossless and JPEG-LS files are read with a plain gdcm::Reader: GDCM's ImageReader decodes RLE
    // pixel data while reading (measured: 7.5 ms per 448² file against 0.2 ms for the plain read), and
    // fuse3d's own paths do that work instead from the data set's tags (its RLE decoder; CharLS called
    // directly for JPEG-LS, without GDCM's codec buffers). Frames those paths do not take go to GDCM.
    bool native = false;
    // A header-only read that stopped at Pixel Data's header without keeping the element (gd_file_has_pixel_data).
    bool pixels_skipped = false;
};

void fuse3d::set_last_error(const std::string &message) {
    t_last_error = message;
    t_has_error = true;
}

extern "C" const char *gd_version(void) { return gdcm::Version::GetVersion(); }

extern "C" char *gd_last_error(void) {
    if (!t_has_error) return nullptr;
    t_has_error = false;
    return fuse3d::dup_string(t_last_error);
}

extern "C" void gd_string_free(char *s) { std::free(s); }

extern "C" void gd_reuse_large_buffers(void) {
    // 32 MiB is the most glibc takes on 64-bit (half its arena heap's size): the 256 MiB asked until issue 20 was
    // refused, which left glibc's dynamic threshold (fresh mmap'd pages for each buffer until the first was freed).
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

extern "C" gd_file gd_file_open(const char *path, int with_pixels) {
    GD_PROTECT(
        capture_gdcm_trace();
        InsideGDCM inside;
        t_trace.clear();
        struct stat st;
        if (stat(path, &st) != 0) {
            fuse3d::set_last_error("cannot open file");
            return nullptr;
        }
        if (S_ISDIR(st.st_mode)) {
            fuse3d::set_last_error("is a directory");
            return nullptr;
        }
        if (st.st_size == 0) {
            fuse3d::set_last_error("empty file (0 bytes)");
            return nullptr;
        }
        std::string structure_error;
        int64_t pixel_length = -2;
        std::string meta_syntax;
        if (!fuse3d::check_structure(path, structure_error, pixel_length, meta_syntax)) {
            if (structure_error.find("Pixel Data, truncated") != std::string::npos) {
                fuse3d::set_last_error("truncated pixel data: " + structure_error);
            } else {
                fuse3d::set_last_error(structure_error.rfind("not a DICOM file", 0) == 0 ? structure_error
                                                                                   : "not a readable DICOM file: " + structure_error);
            }
            return nullptr;
        }
        auto f = std::make_unique<gd_file_s>();
        f->path = path;
        f->with_pixels = with_pixels != 0;
        f->pixel_length = pixel_length;
        // Implicit and Explicit VR Little Endian, RLE Lossless, JPEG-LS: fuse3d decodes these from the data set itself.
        const bool own_decoder = meta_syntax == "1.2.840.10008.1.2" || meta_syntax == "1.2.840.10008.1.2.1" ||
                                 meta_syntax == "1.2.840.10008.1.2.5" || meta_syntax == "1.2.840.10008.1.2.4.80" ||
                                 meta_syntax == "1.2.840.10008.1.2.4.81";
        // JPEG and JPEG 2000 frames are decoded by GDCM's codecs, but GDCM's image reader already runs them over the
        // codestream's header while it reads (GetHeaderInfo), and some of them assert on a hostile one (issue 32: a
        // JPEG SOF precision of 0, a JPEG-LS size against Rows): such files are read with a plain reader first, their
        // codestreams checked against the tags (decode), and only then given to an image reader.
        const bool checked_first = fuse3d::codestream_of(meta_syntax) == fuse3d::Codestream::jpeg ||
                                   fuse3d::codestream_of(meta_syntax) == fuse3d::Codestream::jpeg2000;
        if (with_pixels == 2) f->with_pixels = own_decoder || checked_first;
        f->native = f->with_pixels && (own_decoder || (with_pixels == 2 && checked_first));
        bool ok;
        if (f->native) {
            f->reader = std::make_unique<gdcm::Reader>();
            f->reader->SetFileName(path);
            ok = f->reader->Read();
        } else if (f->with_pixels) {
            auto r = std::make_unique<gdcm::ImageReader>();
            r->SetFileName(path);
            ok = r->Read();
            f->reader = std::move(r);
        } else {
            f->reader = std::make_unique<gdcm::Reader>();
            f->reader->SetFileName(path);
            // Pixel Data in the skip set: GDCM stops at its header instead of reading its value (it read every file's
            // pixels during the header scan: 129 of 208 MB on 12 scanner-size studies). Whether it is there comes from
            // the structure walk then (gd_file_has_pixel_data).
            // (A deflated file's walk cannot see inside the deflated stream: read as before.)
            f->pixels_skipped = meta_syntax != "1.2.840.10008.1.2.1.99";
            const std::set<gdcm::Tag> skip{gdcm::Tag(0x7fe0, 0x0010)};
            ok = f->pixels_skipped ? f->reader->ReadUpToTag(gdcm::Tag(0x7fe0, 0x0010), skip)
                                   : f->reader->ReadUpToTag(gdcm::Tag(0x7fe0, 0x0010));
        }
        std::string trace = trimmed_trace();
        if (!ok) {
            std::string msg = f->with_pixels ? "not a readable DICOM image" : "not a readable DICOM file";
            if (!trace.empty()) msg += " (GDCM: " + trace.substr(0, 400) + ")";
            fuse3d::set_last_error(msg);
            return nullptr;
        }
        f->warnings = trace;
        f->filter.SetFile(f->reader->GetFile());
        return f.release();
    )
    return nullptr;
}

extern "C" void gd_file_free(gd_file f) { delete f; }

extern "C" int gd_file_has_pixels(gd_file f) { return f->with_pixels ? 1 : 0; }

extern "C" char *gd_file_transfer_syntax(gd_file f) {
    GD_PROTECT(
        const gdcm::TransferSyntax &ts = f->reader->GetFile().GetHeader().GetDataSetTransferSyntax();
        const char *s = ts.GetString();
        return s ? fuse3d::dup_string(s) : nullptr;
    )
    return nullptr;
}

extern "C" char *gd_file_warnings(gd_file f) { return fuse3d::dup_string(f->warnings); }

namespace {
std::string trim_value(std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
    size_t i = 0;
    while (i < s.size() && s[i] == ' ') i++;
    return s.substr(i);
}

/// The data set of the first item of sequence `tag` in `ds`, or nullptr.
const gdcm::DataSet *first_item(const gdcm::DataSet &ds, const gdcm::Tag &tag, size_t index = 1) {
    if (!ds.FindDataElement(tag)) return nullptr;
    gdcm::SmartPointer<gdcm::SequenceOfItems> sq = ds.GetDataElement(tag).GetValueAsSQ();
    if (!sq || sq->GetNumberOfItems() < index) return nullptr;
    return &sq->GetItem(index).GetNestedDataSet();
}
}  // namespace

extern "C" char *gd_file_string(gd_file f, uint16_t group, uint16_t element) {
    GD_PROTECT(
        const gdcm::DataSet &ds = f->reader->GetFile().GetDataSet();
        gdcm::Tag tag(group, element);
        if (!ds.FindDataElement(tag)) return nullptr;
        return fuse3d::dup_string(trim_value(f->filter.ToString(ds.GetDataElement(tag))));
    )
    return nullptr;
}

extern "C" char *gd_file_frame_string(gd_file f, int frame, uint16_t seq_group, uint16_t seq_element,
                                      uint16_t group, uint16_t element) {
    GD_PROTECT(
        const gdcm::DataSet &ds = f->reader->GetFile().GetDataSet();
        gdcm::Tag seq(seq_group, seq_element), tag(group, element);
        const gdcm::DataSet *groups[2] = {
            first_item(ds, gdcm::Tag(0x5200, 0x9230), static_cast<size_t>(frame) + 1),  // per-frame
            first_item(ds, gdcm::Tag(0x5200, 0x9229)),                                  // shared
        };
        for (const gdcm::DataSet *g : groups) {
            if (!g) continue;
            const gdcm::DataSet *inner = first_item(*g, seq);
            if (inner && inner->FindDataElement(tag))
                return fuse3d::dup_string(trim_value(f->filter.ToString(inner->GetDataElement(tag))));
        }
        return nullptr;
    )
    return nullptr;
}

extern "C" int64_t gd_file_pixel_data_length(gd_file f) { return f->pixel_length; }

extern "C" int gd_file_has_pixel_data(gd_file f) {
    // A header-only read stops before Pixel Data's value and does not keep the element: the structure walk says.
    if (f->pixels_skipped) return f->pixel_length != -2 ? 1 : 0;
    return f->reader->GetFile().GetDataSet().FindDataElement(gdcm::Tag(0x7fe0, 0x0010)) ? 1 : 0;
}

namespace {
template <typename T>
void convert(const char *raw, int64_t n, int bits_stored, bool is_signed, double slope, double intercept, float *out) {
    const T *v = reinterpret_cast<const T *>(raw);
    const int bits = static_cast<int>(sizeof(T) * 8);
    const bool mask = bits_stored > 0 && bits_stored < bits;
    // Each case is its own branch-free loop (the compiler vectorizes them); every value is what
    // static_cast<float>(x * slope + intercept) in double gives.
    if (!mask) {
        if (slope == 1 && intercept == 0) {
            // x * 1 + 0 is x exactly, and the integer's one rounding to float is the double's.
            for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(v[i]);
        } else {
            for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(static_cast<double>(v[i]) * slope + intercept);
        }
        return;
    }
    using U = std::make_unsigned_t<T>;
    const U m = static_cast<U>((uint64_t(1) << bits_stored) - 1);
    if (is_signed) {
        // The low bits_stored bits as a two's-complement number: shifted to the top and back (arithmetic shift).
        using S = std::make_signed_t<T>;
        const int up = bits - bits_stored;
        auto value = [&](int64_t i) -> S { return static_cast<S>(static_cast<U>(static_cast<U>(v[i]) << up)) >> up; };
        if (slope == 1 && intercept == 0) {
            for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(value(i));
        } else {
            for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(static_cast<double>(value(i)) * slope + intercept);
        }
    } else if (slope == 1 && intercept == 0) {
        for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(static_cast<U>(static_cast<U>(v[i]) & m));
    } else {
        for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(static_cast<double>(static_cast<U>(static_cast<U>(v[i]) & m)) * slope + intercept);
    }
}

/// The rescale of each frame: frame k's `frame_values` values use slopes[j] and intercepts[j], j = min(k, count - 1).
struct Rescale {
    const double *slopes;
    const double *intercepts;
    int64_t count;
    int64_t frame_values;
};

template <typename T>
void convert_frames(const char *raw, int64_t n, int bits_stored, bool is_signed, const Rescale &r, float *out) {
    for (int64_t start = 0, k = 0; start < n; start += r.frame_values, k++) {
        const int64_t i = std::min(k, r.count - 1);
        convert<T>(raw + start * static_cast<int64_t>(sizeof(T)), std::min(r.frame_values, n - start), bits_stored,
                   is_signed, r.slopes[i], r.intercepts[i], out + start);
    }
}
}  // namespace

namespace {
/// What a decode needs to know about the pixels, from GDCM's Image or from the data set's tags.
struct PixelLayout {
    int64_t rows = 0, cols = 0, frames = 1;
    int samples = 1, bits_allocated = 0, bits_stored = 0, high_bit = -1;
    bool is_signed = false;
    std::string photometric;
};

/// The layout from the data set's tags (files read without GDCM's ImageReader); absent tags read as 0.
PixelLayout layout_from_tags(gd_file f) {
    const gdcm::DataSet &ds = f->reader->GetFile().GetDataSet();
    auto text = [&](uint16_t g, uint16_t e) -> std::string {
        gdcm::Tag tag(g, e);
        if (!ds.FindDataElement(tag)) return "";
        return trim_value(f->filter.ToString(ds.GetDataElement(tag)));
    };
    auto number = [&](uint16_t g, uint16_t e, long fallback) -> long {
        const std::string s = text(g, e);
        char *end = nullptr;
        const long v = std::strtol(s.c_str(), &end, 10);
        return s.empty() || end == s.c_str() ? fallback : v;
    };
    PixelLayout p;
    p.rows = number(0x0028, 0x0010, 0);
    p.cols = number(0x0028, 0x0011, 0);
    p.frames = number(0x0028, 0x0008, 1);
    p.samples = static_cast<int>(number(0x0028, 0x0002, 1));
    p.bits_allocated = static_cast<int>(number(0x0028, 0x0100, 0));
    p.bits_stored = static_cast<int>(number(0x0028, 0x0101, p.bits_allocated));
    // Absent or empty: the usual Bits Stored − 1; text without digits reads as 0 (as atoi has it).
    const std::string high_bit = text(0x0028, 0x0102);
    p.high_bit = high_bit.empty() ? p.bits_stored - 1 : static_cast<int>(std::strtol(high_bit.c_str(), nullptr, 10));
    p.is_signed = number(0x0028, 0x0103, 0) == 1;
    p.photometric = text(0x0028, 0x0004);
    return p;
}

/// Decodes RLE Lossless (fuse3d's decoder, rle_decode.cpp) or JPEG-LS (CharLS, jpegls_decode.cpp) pixel data
/// into `out`, frame after frame. 1: done; 0: another syntax, not one fragment per frame, or a frame the
/// JPEG-LS path does not take (GDCM decodes it then); -1: a broken stream (last error set).
int native_frames(const gdcm::DataElement &pd, const gdcm::TransferSyntax &ts, int64_t rows, int64_t cols, int64_t frames,
                  int samples, int bits, char *out, int64_t capacity) {
    const bool jpegls = ts == gdcm::TransferSyntax::JPEGLSLossless || ts == gdcm::TransferSyntax::JPEGLSNearLossless;
    if ((ts != gdcm::TransferSyntax::RLELossless && !jpegls) || bits % 8 != 0) return 0;
    const gdcm::SequenceOfFragments *sf = pd.GetSequenceOfFragments();
    if (!sf || static_cast<int64_t>(sf->GetNumberOfFragments()) != frames) return 0;
    const int64_t frame_bytes = rows * cols * samples * (bits / 8);
    if (capacity < frame_bytes * frames) {
        fuse3d::set_last_error("output buffer too small");
        return -1;
    }
    for (int64_t i = 0; i < frames; i++) {
        const gdcm::ByteValue *bv = sf->GetFragment(static_cast<unsigned int>(i)).GetByteValue();
        if (!bv) {
            fuse3d::set_last_error(std::string(jpegls ? "JPEG-LS" : "RLE") + ": frame " + std::to_string(i) + " has an empty fragment");
            return -1;
        }
        const auto *fragment = reinterpret_cast<const uint8_t *>(bv->GetPointer());
        auto *frame = reinterpret_cast<uint8_t *>(out + i * frame_bytes);
        const int64_t n = jpegls ? gd_jpegls_decode_frame(fragment, bv->GetLength(), static_cast<int>(rows), static_cast<int>(cols),
                                                          samples, bits, frame, static_cast<uint64_t>(frame_bytes))
                                 : gd_rle_decode_frame(fragment, bv->GetLength(), static_cast<int>(rows), static_cast<int>(cols),
                                                       samples, bits, frame, static_cast<uint64_t>(frame_bytes));
        if (n == -2 || (n >= 0 && n != frame_bytes)) return 0;
        if (n < 0) {
            if (frames > 1) fuse3d::set_last_error("frame " + std::to_string(i) + ": " + t_last_error);
            return -1;
        }
    }
    return 1;
}
}  // namespace

namespace {
/// Every frame's codestream header in `pd` against Rows x Columns x frames, samples and BitsAllocated
/// (codestream_check.cpp), before any decoder reads the fragments. True when they agree or the pixel data is not
/// encapsulated; false with the last error set.
bool check_codestreams(const gdcm::DataElement &pd, const gdcm::TransferSyntax &ts, int64_t rows, int64_t cols, int64_t frames,
                       int samples, int bits) {
    const gdcm::SequenceOfFragments *sf = pd.GetSequenceOfFragments();
    if (!sf) return true;
    const fuse3d::Codestream kind = fuse3d::codestream_of(ts.GetString() ? ts.GetString() : "");
    if (kind == fuse3d::Codestream::none) return true;
    const fuse3d::FrameExpectation expect{rows, cols, samples, bits};
    const size_t count = sf->GetNumberOfFragments();
    if (count == 0) {
        fuse3d::set_last_error("encapsulated pixel data without fragments");
        return false;
    }
    if (kind == fuse3d::Codestream::rle && static_cast<int64_t>(count) != frames) {
        fuse3d::set_last_error("RLE pixel data has " + std::to_string(count) + " fragment(s) for " + std::to_string(frames) +
                               " frame(s) (one each)");
        return false;
    }
    // A frame's first fragment starts its codestream: every fragment when there are as many as frames, else the ones
    // that start with the family's marker (a single frame's later fragments are not looked at).
    int64_t starts = 0;
    for (size_t i = 0; i < count; i++) {
        const gdcm::ByteValue *bv = sf->GetFragment(static_cast<unsigned int>(i)).GetByteValue();
        const uint8_t *data = bv ? reinterpret_cast<const uint8_t *>(bv->GetPointer()) : nullptr;
        const size_t length = bv ? static_cast<size_t>(bv->GetLength()) : size_t(0);
        const bool first = static_cast<int64_t>(count) == frames || i == 0 ||
                           (frames > 1 && fuse3d::starts_frame(kind, data, length));
        if (!first) continue;
        std::string error;
        if (!data || !fuse3d::check_frame_header(kind, data, length, expect, error)) {
            if (!data) error = "an empty fragment";
            fuse3d::set_last_error(frames > 1 ? "frame " + std::to_string(starts) + ": " + error : error);
            return false;
        }
        starts++;
    }
    if (starts != frames) {
        fuse3d::set_last_error("pixel data holds " + std::to_string(starts) + " codestream(s) for " + std::to_string(frames) +
                               " frame(s)");
        return false;
    }
    return true;
}

/// GDCM's decoded buffer with a guard band after it: a codec that writes past the length it was given is caught
/// (the process is ended at once rather than run on with a damaged heap; a supervised worker reports the file).
struct GuardedBuffer {
    static constexpr size_t kGuard = 256;
    static constexpr unsigned char kByte = 0xA5;
    std::unique_ptr<char[]> bytes;
    size_t length;
    explicit GuardedBuffer(size_t n) : bytes(new char[n + kGuard]), length(n) {
        std::memset(bytes.get() + n, kByte, kGuard);
    }
    char *get() { return bytes.get(); }
    void check(const std::string &path) const {
        for (size_t i = 0; i < kGuard; i++) {
            if (static_cast<unsigned char>(bytes[length + i]) != kByte) {
                std::fprintf(stderr, "fuse3d: a decoder wrote past its buffer on %s; ending the process\n", path.c_str());
                std::abort();
            }
        }
    }
};
}  // namespace

namespace {
/// The file's GDCM ImageReader: its own, or (for a file read with a plain Reader for fuse3d's own
/// decoders) a new one in `own`. nullptr with the last error set when GDCM cannot read the image.
gdcm::ImageReader *image_reader(gd_file f, std::unique_ptr<gdcm::ImageReader> &own) {
    if (!f->native) return static_cast<gdcm::ImageReader *>(f->reader.get());
    own = std::make_unique<gdcm::ImageReader>();
    own->SetFileName(f->path.c_str());
    InsideGDCM inside;
    if (!own->Read()) {
        fuse3d::set_last_error("not a readable DICOM image");
        return nullptr;
    }
    return own.get();
}
}  // namespace

extern "C" int64_t gd_file_pixel_bytes(gd_file f, int decoder, uint8_t *out, int64_t capacity) {
    GD_PROTECT(
        if (!f->with_pixels) {
            fuse3d::set_last_error("file was opened without pixel data");
            return -1;
        }
        if (f->native && decoder == 1) {
            const PixelLayout p = layout_from_tags(f);
            const int64_t length = p.rows * p.cols * p.frames * p.samples * (p.bits_allocated / 8);
            if (!out) return length;
            const gdcm::DataSet &ds = f->reader->GetFile().GetDataSet();
            const int r = native_frames(ds.GetDataElement(gdcm::Tag(0x7fe0, 0x0010)), f->reader->GetFile().GetHeader().GetDataSetTransferSyntax(),
                                        p.rows, p.cols, p.frames, p.samples, p.bits_allocated, reinterpret_cast<char *>(out), capacity);
            if (r == 0) fuse3d::set_last_error("not RLE Lossless or greyscale JPEG-LS with one fragment per frame");
            return r == 1 ? length : -1;
        }
        std::unique_ptr<gdcm::ImageReader> own;
        gdcm::ImageReader *ir = image_reader(f, own);
        if (!ir) return -1;
        const gdcm::Image &image = ir->GetImage();
        const int64_t length = static_cast<int64_t>(image.GetBufferLength());
        if (!out) return length;
        if (capacity < length) {
            fuse3d::set_last_error("output buffer too small");
            return -1;
        }
        if (decoder == 1) {
            const gdcm::PixelFormat &pf = image.GetPixelFormat();
            const int64_t frames = image.GetNumberOfDimensions() > 2 ? image.GetDimension(2) : 1;
            const int r = native_frames(image.GetDataElement(), f->reader->GetFile().GetHeader().GetDataSetTransferSyntax(),
                                     image.GetDimension(1), image.GetDimension(0), frames, pf.GetSamplesPerPixel(),
                                     pf.GetBitsAllocated(), reinterpret_cast<char *>(out), capacity);
            if (r == 0) fuse3d::set_last_error("not RLE Lossless or greyscale JPEG-LS with one fragment per frame");
            return r == 1 ? length : -1;
        }
        const gdcm::PixelFormat &pf = image.GetPixelFormat();
        const int64_t frames = image.GetNumberOfDimensions() > 2 ? image.GetDimension(2) : 1;
        if (!check_codestreams(image.GetDataElement(), f->reader->GetFile().GetHeader().GetDataSetTransferSyntax(),
                               image.GetDimension(1), image.GetDimension(0), frames, pf.GetSamplesPerPixel(), pf.GetBitsAllocated()))
            return -1;
        InsideGDCM inside;
        t_trace.clear();
        GuardedBuffer raw(static_cast<size_t>(length));
        const bool decoded = image.GetBuffer(raw.get());
        raw.check(f->path);
        if (!decoded) {
            fuse3d::set_last_error("cannot decode pixel data: " + trimmed_trace().substr(0, 400));
            return -1;
        }
        std::memcpy(out, raw.get(), static_cast<size_t>(length));
        return length;
    )
    return -1;
}

namespace {
void flip_monochrome1(float *out, int64_t n) {
    // MONOCHROME1 shows low values bright; flip so that bright is high, as for MONOCHROME2.
    float lo = out[0], hi = out[0];
    for (int64_t i = 1; i < n; i++) { lo = std::min(lo, out[i]); hi = std::max(hi, out[i]); }
    for (int64_t i = 0; i < n; i++) out[i] = hi + lo - out[i];
}

/// Converts `n` little-endian values laid out as `p` says to rescaled floats (MONOCHROME1 flipped).
void convert_native(const char *raw, int64_t n, const PixelLayout &p, const Rescale &rescale, float *out) {
    switch (p.bits_allocated) {
    case 8:
        if (p.is_signed) convert_frames<int8_t>(raw, n, p.bits_stored, true, rescale, out);
        else convert_frames<uint8_t>(raw, n, p.bits_stored, false, rescale, out);
        break;
    case 16:
        if (p.is_signed) convert_frames<int16_t>(raw, n, p.bits_stored, true, rescale, out);
        else convert_frames<uint16_t>(raw, n, p.bits_stored, false, rescale, out);
        break;
    default:
        if (p.is_signed) convert_frames<int32_t>(raw, n, p.bits_stored, true, rescale, out);
        else convert_frames<uint32_t>(raw, n, p.bits_stored, false, rescale, out);
    }
    if (p.photometric == "MONOCHROME1") flip_monochrome1(out, n);
}

/// gd_file_decode for an uncompressed little-endian, RLE Lossless or JPEG-LS file read without GDCM's ImageReader: layout from the
/// tags, frames by fuse3d's paths, the same checks and conversion as the GDCM path. -2: frames these
/// paths do not take (the caller hands the file to GDCM).
int64_t decode_native_file(gd_file f, const PixelLayout &p, const Rescale &rescale, float *out, int64_t capacity) {
    if (p.samples != 1) {
        fuse3d::set_last_error("colour image (" + std::to_string(p.samples) + " samples per pixel, " + p.photometric +
                               ") where a greyscale image is needed");
        return -1;
    }
    if (p.photometric != "MONOCHROME1" && p.photometric != "MONOCHROME2") {
        fuse3d::set_last_error("photometric interpretation " + p.photometric + " is not greyscale");
        return -1;
    }
    if (p.rows <= 0 || p.cols <= 0 || p.frames <= 0) {
        fuse3d::set_last_error("image has no pixels (Rows, Columns or frames is 0)");
        return -1;
    }
    const int64_t n = p.rows * p.cols * p.frames;
    if (n > kMaxValues) {
        fuse3d::set_last_error("absurd image size " + std::to_string(p.rows) + "x" + std::to_string(p.cols) + "x" +
                               std::to_string(p.frames) + " (more than 2^30 pixels)");
        return -1;
    }
    if (capacity < n) {
        fuse3d::set_last_error("output buffer too small");
        return -1;
    }
    const gdcm::DataSet &ds = f->reader->GetFile().GetDataSet();
    const gdcm::TransferSyntax &ts = f->reader->GetFile().GetHeader().GetDataSetTransferSyntax();
    const bool uncompressed = ts == gdcm::TransferSyntax::ImplicitVRLittleEndian || ts == gdcm::TransferSyntax::ExplicitVRLittleEndian;
    if (p.bits_allocated != 8 && p.bits_allocated != 16 && p.bits_allocated != 32) {
        if (uncompressed) return -2;  // 1- or 12-bit packed words: GDCM unpacks them (or says why not), as before
        fuse3d::set_last_error("unsupported BitsAllocated " + std::to_string(p.bits_allocated));
        return -1;
    }
    const int64_t bytes = n * (p.bits_allocated / 8);
    if (uncompressed) {
        // Uncompressed: converted straight from the data element, with no copy. GDCM's raw codec would copy the
        // bytes and clear the bits above High Bit ("overlay clean-up"), which `convert` does itself by Bits Stored;
        // a High Bit other than Bits Stored − 1 (bits shifted within the word) goes to GDCM.
        if (p.bits_stored < 1 || p.bits_stored > p.bits_allocated || p.high_bit != p.bits_stored - 1) return -2;
        const gdcm::ByteValue *bv = ds.FindDataElement(gdcm::Tag(0x7fe0, 0x0010))
                                        ? ds.GetDataElement(gdcm::Tag(0x7fe0, 0x0010)).GetByteValue() : nullptr;
        if (!bv) return -2;
        if (static_cast<int64_t>(bv->GetLength()) < bytes) {
            fuse3d::set_last_error("truncated pixel data: " + std::to_string(bv->GetLength()) + " bytes, but " +
                                   std::to_string(p.rows) + "x" + std::to_string(p.cols) + "x" + std::to_string(p.frames) +
                                   " pixels of " + std::to_string(p.bits_allocated) + " bits need " + std::to_string(bytes));
            return -1;
        }
        convert_native(bv->GetPointer(), n, p, rescale, out);
        return n;
    }
    std::vector<char> raw(static_cast<size_t>(bytes));
    const int r = native_frames(ds.GetDataElement(gdcm::Tag(0x7fe0, 0x0010)), ts, p.rows, p.cols, p.frames, 1, p.bits_allocated,
                                raw.data(), bytes);
    if (r == 0) return -2;
    if (r != 1) return -1;
    convert_native(raw.data(), n, p, rescale, out);
    return n;
}
}  // namespace

namespace {
int64_t decode(gd_file f, Rescale rescale, float *out, int64_t capacity) {
    GD_PROTECT(
        if (!f->with_pixels) {
            fuse3d::set_last_error("file was opened without pixel data");
            return -1;
        }
        if (f->warnings.find("Incomplete Pixel Data") != std::string::npos) {
            // GDCM reads a pixel data element cut short by the end of the file and only warns.
            fuse3d::set_last_error("truncated pixel data: the file ends inside Pixel Data (GDCM: Incomplete Pixel Data)");
            return -1;
        }
        if (rescale.count < 1) {
            fuse3d::set_last_error("no rescale given");
            return -1;
        }
        if (f->native) {
            const PixelLayout p = layout_from_tags(f);
            rescale.frame_values = std::max<int64_t>(1, p.rows * p.cols);
            const gdcm::TransferSyntax &ts = f->reader->GetFile().GetHeader().GetDataSetTransferSyntax();
            const fuse3d::Codestream kind = fuse3d::codestream_of(ts.GetString() ? ts.GetString() : "");
            if (kind == fuse3d::Codestream::jpeg || kind == fuse3d::Codestream::jpeg2000) {
                // Read by a plain reader so that the codestreams meet the tags before GDCM's image reader sees them.
                const gdcm::DataSet &ds = f->reader->GetFile().GetDataSet();
                if (!ds.FindDataElement(gdcm::Tag(0x7fe0, 0x0010))) {
                    fuse3d::set_last_error("no pixel data");
                    return -1;
                }
                if (p.rows <= 0 || p.cols <= 0 || p.frames <= 0 || p.rows * p.cols * p.frames > kMaxValues) {
                    fuse3d::set_last_error("image has no pixels or an absurd size (Rows, Columns, frames)");
                    return -1;
                }
                if (!check_codestreams(ds.GetDataElement(gdcm::Tag(0x7fe0, 0x0010)), ts, p.rows, p.cols, p.frames, p.samples,
                                       p.bits_allocated))
                    return -1;
            } else {
                const int64_t n = decode_native_file(f, p, rescale, out, capacity);
                if (n != -2) return n;
            }
        }
        std::unique_ptr<gdcm::ImageReader> own;
        gdcm::ImageReader *ir = image_reader(f, own);
        if (!ir) return -1;
        InsideGDCM inside;
        t_trace.clear();
        const gdcm::Image &image = ir->GetImage();
        const gdcm::PixelFormat &pf = image.GetPixelFormat();
        if (pf.GetSamplesPerPixel() != 1) {
            const char *name = image.GetPhotometricInterpretation().GetString();
            fuse3d::set_last_error("colour image (" + std::to_string(pf.GetSamplesPerPixel()) +
                                   " samples per pixel, " + (name ? name : "unknown photometric interpretation") +
                                   ") where a greyscale image is needed");
            return -1;
        }
        const gdcm::PhotometricInterpretation::PIType pi = image.GetPhotometricInterpretation();
        if (pi != gdcm::PhotometricInterpretation::MONOCHROME1 && pi != gdcm::PhotometricInterpretation::MONOCHROME2) {
            // GetPIString is NULL for an interpretation GDCM does not know (a std::string of NULL was a SIGSEGV here).
            const char *name = gdcm::PhotometricInterpretation::GetPIString(pi);
            fuse3d::set_last_error(std::string("photometric interpretation ") + (name ? name : "(unknown)") + " is not greyscale");
            return -1;
        }
        const int64_t cols = image.GetDimension(0), rows = image.GetDimension(1);
        const int64_t frames = image.GetNumberOfDimensions() > 2 ? image.GetDimension(2) : 1;
        if (rows <= 0 || cols <= 0 || frames <= 0) {
            fuse3d::set_last_error("image has no pixels (Rows, Columns or frames is 0)");
            return -1;
        }
        // What GDCM derived from the file (it may take a JPEG stream's size over the tags) against the file's own Rows
        // and Columns; every codestream's header is checked against both below, before a codec reads it (issue 32).
        const PixelLayout tags = layout_from_tags(f);
        if (tags.rows != rows || tags.cols != cols) {
            fuse3d::set_last_error("the pixel data is " + std::to_string(cols) + "x" + std::to_string(rows) +
                                   " pixels but Columns and Rows say " + std::to_string(tags.cols) + "x" + std::to_string(tags.rows));
            return -1;
        }
        const int64_t n = rows * cols * frames;
        if (n > kMaxValues) {
            fuse3d::set_last_error("absurd image size " + std::to_string(rows) + "x" + std::to_string(cols) + "x" +
                                   std::to_string(frames) + " (more than 2^30 pixels)");
            return -1;
        }
        if (capacity < n) {
            fuse3d::set_last_error("output buffer too small");
            return -1;
        }
        rescale.frame_values = rows * cols;
        const int bytes_per = (pf.GetBitsAllocated() + 7) / 8;
        const int64_t needed = n * bytes_per;
        const gdcm::DataElement &pd = image.GetDataElement();
        const gdcm::TransferSyntax &ts = f->reader->GetFile().GetHeader().GetDataSetTransferSyntax();
        if (const gdcm::ByteValue *bv = pd.GetByteValue()) {
            // Native (uncompressed) pixel data: its length must cover Rows x Columns x frames.
            if (static_cast<int64_t>(bv->GetLength()) < needed) {
                fuse3d::set_last_error("truncated pixel data: " + std::to_string(bv->GetLength()) + " bytes, but " +
                                       std::to_string(rows) + "x" + std::to_string(cols) + "x" + std::to_string(frames) +
                                       " pixels of " + std::to_string(pf.GetBitsAllocated()) + " bits need " +
                                       std::to_string(needed));
                return -1;
            }
        } else if (!pd.GetSequenceOfFragments()) {
            fuse3d::set_last_error("no pixel data");
            return -1;
        }
        const unsigned long length = image.GetBufferLength();
        if (static_cast<int64_t>(length) < needed) {
            fuse3d::set_last_error("decoded buffer length " + std::to_string(length) + " is shorter than " +
                                   std::to_string(needed));
            return -1;
        }
        if (!check_codestreams(pd, ts, rows, cols, frames, 1, pf.GetBitsAllocated())) return -1;
        // Uncompressed data is written whole or the decode fails; a codec given a short codestream may stop early and
        // still succeed, so compressed frames start from zeros (never from whatever the heap held).
        GuardedBuffer raw(length);
        if (pd.GetSequenceOfFragments()) std::memset(raw.get(), 0, length);
        const int rle = native_frames(pd, ts, rows, cols, frames, 1, pf.GetBitsAllocated(), raw.get(), static_cast<int64_t>(length));
        if (rle < 0) return -1;
        if (rle == 0 && !image.GetBuffer(raw.get())) {
            raw.check(f->path);
            std::string trace = trimmed_trace();
            fuse3d::set_last_error(std::string("cannot decode pixel data (") + (ts.GetString() ? ts.GetString() : "unknown transfer syntax") + ")" +
                                   (trace.empty() ? "" : ": " + trace.substr(0, 400)));
            return -1;
        }
        raw.check(f->path);
        {
            std::string trace = trimmed_trace();
            if (trace.find("Incomplete Pixel Data") != std::string::npos) {
                fuse3d::set_last_error("incomplete pixel data: " + trace.substr(0, 400));
                return -1;
            }
            if (!trace.empty()) f->warnings += (f->warnings.empty() ? "" : "\n") + trace;
        }
        const int bs = pf.GetBitsStored();
        const bool sgn = pf.GetPixelRepresentation() == 1;
        switch (pf.GetScalarType()) {
        case gdcm::PixelFormat::UINT8: convert_frames<uint8_t>(raw.get(), n, bs, false, rescale, out); break;
        case gdcm::PixelFormat::INT8: convert_frames<int8_t>(raw.get(), n, bs, true, rescale, out); break;
        case gdcm::PixelFormat::UINT12:
        case gdcm::PixelFormat::UINT16: convert_frames<uint16_t>(raw.get(), n, bs, sgn, rescale, out); break;
        case gdcm::PixelFormat::INT12:
        case gdcm::PixelFormat::INT16: convert_frames<int16_t>(raw.get(), n, bs, true, rescale, out); break;
        case gdcm::PixelFormat::UINT32: convert_frames<uint32_t>(raw.get(), n, bs, false, rescale, out); break;
        case gdcm::PixelFormat::INT32: convert_frames<int32_t>(raw.get(), n, bs, true, rescale, out); break;
        case gdcm::PixelFormat::FLOAT32: {
            const float *v = reinterpret_cast<const float *>(raw.get());
            for (int64_t i = 0; i < n; i++) {
                if (!std::isfinite(v[i])) {
                    fuse3d::set_last_error("floating-point pixel " + std::to_string(i) + " is not a finite number");
                    return -1;
                }
            }
            for (int64_t i = 0; i < n; i++) {
                const int64_t k = std::min(i / rescale.frame_values, rescale.count - 1);
                out[i] = static_cast<float>(v[i] * rescale.slopes[k] + rescale.intercepts[k]);
            }
            break;
        }
        default:
            fuse3d::set_last_error(std::string("unsupported pixel format ") + pf.GetScalarTypeAsString());
            return -1;
        }
        if (pi == gdcm::PhotometricInterpretation::MONOCHROME1) flip_monochrome1(out, n);
        return n;
    )
    return -1;
}
}  // namespace

extern "C" int64_t gd_file_decode(gd_file f, double slope, double intercept, float *out, int64_t capacity) {
    return decode(f, Rescale{&slope, &intercept, 1, 1}, out, capacity);
}

extern "C" int64_t gd_file_decode_frames(gd_file f, const double *slopes, const double *intercepts, int64_t count,
                                         float *out, int64_t capacity) {
    return decode(f, Rescale{slopes, intercepts, count, 1}, out, capacity);
}
