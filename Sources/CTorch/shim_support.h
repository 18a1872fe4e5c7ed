// What the shim's translation units share (torch_api.cpp, torch_distributed.cpp): the thread-local last
// error that at_take_error drains, the PROTECT macro that fills it, and the handle conversions. Included
// after the libtorch headers; not part of the C API (Package.swift excludes the shim's C++ from CTorch).
#ifndef CTORCH_SHIM_SUPPORT_H
#define CTORCH_SHIM_SUPPORT_H
#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "ctorch.h"

namespace ctorch {
// One definition across the shim's files (C++17 inline variables), so an error set in any of them is
// the one at_take_error returns.
inline thread_local std::string last_error;
inline thread_local bool has_error = false;

inline void set_error(const char *message) {
    last_error = message;
    has_error = true;
}

inline char *copy_string(const std::string &s) {
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (p) std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}

inline at::Tensor &T(at_tensor t) { return *static_cast<at::Tensor *>(t); }

inline at_tensor wrap(at::Tensor t) { return new at::Tensor(std::move(t)); }
}  // namespace ctorch

#define PROTECT(body)                                                  \
    try {                                                              \
        body                                                           \
    } catch (const std::exception &e) {                                \
        ctorch::set_error(e.what());                                   \
    } catch (...) {                                                    \
        ctorch::set_error("unknown C++ exception in libtorch");        \
    }

#endif
