// Shared by the CGDCM shim's translation units: the thread-local last error and PROTECT.
#pragma once
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace fuse3d {
/// Sets the calling thread's last error (replacing any earlier one).
void set_last_error(const std::string &message);
/// Duplicates a std::string into malloc'd memory for the C side.
inline char *dup_string(const std::string &s) {
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (p) std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}
}  // namespace fuse3d

/// Runs `body`; any C++ exception becomes the thread's last error instead of crossing into C.
#define GD_PROTECT(...)                                                              \
    try {                                                                             \
        __VA_ARGS__                                                                   \
    } catch (const std::exception &e) {                                               \
        fuse3d::set_last_error(e.what());                                             \
    } catch (...) {                                                                   \
        fuse3d::set_last_error("unknown C++ exception in GDCM");                      \
    }
