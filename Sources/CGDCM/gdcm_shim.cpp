#include "cgdcm.h"
#include "shim_common.hpp"
#include <gdcmVersion.h>

namespace {
thread_local std::string t_last_error;
thread_local bool t_has_error = false;
}  // namespace

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
