// Checks a compressed frame's own header (JPEG 2000 SIZ, JPEG SOF, JPEG-LS SOF55, RLE segment table) against the
// DICOM header before any third-party decoder sees it. See codestream_check.cpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace fuse3d {
/// What the DICOM header says one frame holds.
struct FrameExpectation {
    int64_t rows = 0, columns = 0;
    int samples = 1, bits_allocated = 0;
};

/// The codestream families the check knows, by transfer syntax.
enum class Codestream { none, jpeg, jpegls, jpeg2000, rle };

/// The family of a transfer syntax UID (`none`: not encapsulated, or one the check does not parse).
Codestream codestream_of(const std::string &transfer_syntax);

/// True when `data` begins a frame of that family: JPEG and JPEG-LS SOI, JPEG 2000 SOC or the JP2 signature box.
/// (RLE frames have no marker: every fragment that is the first of a frame is one.)
bool starts_frame(Codestream kind, const uint8_t *data, size_t length);

/// Parses the frame header at the start of `data` (only its first bytes are read, never past `length`) and compares
/// it with `expect`. False with `error` naming the disagreement ("JPEG 2000 codestream is 160x160, the header says
/// 17x160") or what is malformed; true for a frame whose decode writes exactly Rows x Columns x Samples samples of
/// BitsAllocated bits.
bool check_frame_header(Codestream kind, const uint8_t *data, size_t length, const FrameExpectation &expect,
                        std::string &error);
}  // namespace fuse3d
