// A bounds check of a DICOM file's element structure, run before GDCM parses it.
#pragma once
#include <cstdint>
#include <string>

namespace fuse3d {
/// Walks every element (sequences and items included) and checks that each declared length fits
/// in what encloses it. Debian's GDCM is built with assertions, and some lying lengths end in
/// abort() inside it; this walk turns them into an error message instead. Returns false and fills
/// `error` on the first element that does not fit. Deflated data sets are checked up to the meta group.
/// `pixel_length` receives the top-level Pixel Data's declared length: -2 absent, -1 encapsulated or deflated.
/// `transfer_syntax` receives the file meta group's Transfer Syntax UID (empty without one).
bool check_structure(const std::string &path, std::string &error, int64_t &pixel_length, std::string &transfer_syntax);
}  // namespace fuse3d
