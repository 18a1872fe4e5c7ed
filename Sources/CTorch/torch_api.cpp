// The libtorch shim, built into libfuse3d_torch.so by scripts/build-torch-shim.sh (`make torch`) against
// a chosen libtorch and opened by fuse3d on first use (ctorch_loader.c). Every entry point runs its body
// under PROTECT, so a C++ exception becomes the calling thread's last error (drained by at_take_error)
// and never unwinds into Swift.
#include "ctorch.h"
#include "ctorch_functions.h"

// Checked before the heavy headers so that a missing or mismatched libtorch fails with one clear line.
#if !__has_include(<torch/version.h>)
#error "libtorch headers not found: `make torch PYTHON=/path/to/python` or `make torch LIBTORCH=/path/to/libtorch`"
#endif
#include <torch/version.h>
// 2.4 introduced the device-generic autocast API used below; 3.x may change the C++ API.
#if TORCH_VERSION_MAJOR != 2 || TORCH_VERSION_MINOR < 4
#error "Fuse3D's libtorch bridge needs libtorch 2.4 to 2.x: point PYTHON or LIBTORCH at a PyTorch in that range"
#endif

// libtorch's own headers use a C++20 extension (bit-field initialisers) that clang flags under C++17.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wc++20-extensions"
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#pragma clang diagnostic pop

#include "shim_support.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
// The folder of the libtorch_cpu library this shim runs on (found through one of its symbols).
std::string libtorch_library_path() {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&at::get_num_threads), &info) == 0 || info.dli_fname == nullptr) return "";
    return info.dli_fname;
}

// The shim links only libtorch_cpu and c10, so that a CUDA build of libtorch still opens on a machine
// without the CUDA libraries; its CUDA part (libtorch_cuda.so, which registers the CUDA kernels) is
// opened here when present, and a failure is kept for `fuse3d version` instead of failing the CPU.
struct CudaPart {
    std::string error;
    CudaPart() {
        auto cpu = libtorch_library_path();
        auto cuda = cpu.substr(0, cpu.rfind('/') + 1) + "libtorch_cuda.so";
        if (cpu.empty() || access(cuda.c_str(), F_OK) != 0) return;
        if (dlopen(cuda.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) error = dlerror();
    }
};
const CudaPart cuda_part;

using ctorch::copy_string;
using ctorch::T;
using ctorch::wrap;

c10::Device device_of(int code) {
    return code < 0 ? c10::Device(c10::kCPU) : c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(code));
}

at::TensorOptions options(int dtype, int device) {
    return at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype)).device(device_of(device));
}

at::IntArrayRef dims(const int64_t *p, int n) { return at::IntArrayRef(p, static_cast<size_t>(n)); }

c10::optional<at::Tensor> optional_tensor(at_tensor t) {
    if (t == nullptr) return c10::nullopt;
    return T(t);
}
}  // namespace

extern "C" {

/** The ctorch.h interface this shim was compiled from; the loader refuses a different one. */
const char *ctorch_shim_abi(void) { return CTORCH_ABI_HASH; }

const char *at_version(void) { return TORCH_VERSION; }

char *at_take_error(void) {
    if (!ctorch::has_error) return nullptr;
    ctorch::has_error = false;
    return copy_string(ctorch::last_error);
}

void at_string_free(char *s) { std::free(s); }

int atg_cuda_is_available(void) { return torch::cuda::is_available() ? 1 : 0; }
void atg_manual_seed(uint64_t seed) { PROTECT(torch::manual_seed(seed);) }
void atg_set_num_threads(int n) { PROTECT(at::set_num_threads(n);) }
int atg_get_num_threads(void) { return at::get_num_threads(); }
int atg_set_grad_enabled(int enabled) {
    bool previous = at::GradMode::is_enabled();
    at::GradMode::set_enabled(enabled != 0);
    return previous ? 1 : 0;
}

void atg_autocast_enter(int cuda, int dtype) {
    PROTECT(
        auto type = cuda ? at::kCUDA : at::kCPU;
        at::autocast::set_autocast_dtype(type, static_cast<at::ScalarType>(dtype));
        at::autocast::set_autocast_enabled(type, true);
        at::autocast::increment_nesting();
    )
}

void atg_autocast_exit(int cuda) {
    PROTECT(
        auto type = cuda ? at::kCUDA : at::kCPU;
        at::autocast::set_autocast_enabled(type, false);
        if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    )
}

void atg_get_rng_state(at_tensor *out) {
    *out = nullptr;
    PROTECT(
        auto gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        *out = wrap(gen.get_state());
    )
}

void atg_set_rng_state(at_tensor state) {
    PROTECT(
        auto gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(T(state));
    )
}

// Through the Context, not at::cuda::detail: this file builds against CPU-only libtorch too, where the CUDA
// hooks throw "without ATen_cuda library" (turned into the caller's error by PROTECT).
void atg_get_cuda_rng_state(int device, at_tensor *out) {
    *out = nullptr;
    PROTECT(
        auto gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device)));
        std::lock_guard<std::mutex> lock(gen.mutex());
        *out = wrap(gen.get_state());
    )
}

void atg_set_cuda_rng_state(int device, at_tensor state) {
    PROTECT(
        auto gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device)));
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(T(state));
    )
}

void at_free(at_tensor t) { delete static_cast<at::Tensor *>(t); }

#define OUT(expr)              \
    *out = nullptr;            \
    PROTECT(*out = wrap(expr);)

void at_empty(const int64_t *shape, int ndim, int dtype, int device, at_tensor *out) {
    OUT(torch::empty(dims(shape, ndim), options(dtype, device)))
}
void at_full(const int64_t *shape, int ndim, double value, int dtype, int device, at_tensor *out) {
    OUT(torch::full(dims(shape, ndim), value, options(dtype, device)))
}
void at_rand(const int64_t *shape, int ndim, int dtype, int device, at_tensor *out) {
    OUT(torch::rand(dims(shape, ndim), options(dtype, device)))
}
void at_randn(const int64_t *shape, int ndim, int dtype, int device, at_tensor *out) {
    OUT(torch::randn(dims(shape, ndim), options(dtype, device)))
}
void at_arange(double start, double end, double step, int dtype, int device, at_tensor *out) {
    OUT(torch::arange(start, end, step, options(dtype, device)))
}

void at_from_data(const void *data, const int64_t *shape, int ndim, int dtype, int device, at_tensor *out) {
    *out = nullptr;
    PROTECT(
        auto cpu = torch::empty(dims(shape, ndim), options(dtype, -1));
        std::memcpy(cpu.data_ptr(), data, cpu.nbytes());
        *out = wrap(device < 0 ? cpu : cpu.to(device_of(device)));
    )
}

void at_shallow_clone(at_tensor t, at_tensor *out) { OUT(T(t)) }

int at_dim(at_tensor t) { return static_cast<int>(T(t).dim()); }
void at_shape(at_tensor t, int64_t *out) {
    auto sizes = T(t).sizes();
    for (size_t i = 0; i < sizes.size(); ++i) out[i] = sizes[i];
}
int at_dtype(at_tensor t) { return static_cast<int>(T(t).scalar_type()); }
int at_device(at_tensor t) { return T(t).is_cuda() ? T(t).device().index() : -1; }
int64_t at_numel(at_tensor t) { return T(t).numel(); }
size_t at_element_size(at_tensor t) { return T(t).element_size(); }
int at_requires_grad(at_tensor t) { return T(t).requires_grad() ? 1 : 0; }
int at_is_contiguous(at_tensor t) { return T(t).is_contiguous() ? 1 : 0; }

void *at_data_ptr(at_tensor t) {
    PROTECT(
        TORCH_CHECK(T(t).is_cpu() && T(t).is_contiguous(), "data_ptr needs a contiguous CPU tensor");
        return T(t).data_ptr();
    )
    return nullptr;
}

void at_copy_data(at_tensor t, void *dst, size_t nbytes) {
    PROTECT(
        auto src = T(t).detach().to(c10::kCPU).contiguous();
        TORCH_CHECK(src.nbytes() == nbytes, "copy_data: tensor holds ", src.nbytes(), " bytes, buffer ", nbytes);
        std::memcpy(dst, src.data_ptr(), nbytes);
    )
}

void at_item(at_tensor t, double *out) { PROTECT(*out = T(t).item<double>();) }
void at_to(at_tensor t, int dtype, int device, at_tensor *out) {
    OUT(T(t).to(device_of(device), static_cast<at::ScalarType>(dtype)))
}
void at_contiguous(at_tensor t, int memory_format, at_tensor *out) {
    OUT(T(t).contiguous(memory_format == 1 ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::Contiguous))
}
void at_clone(at_tensor t, at_tensor *out) { OUT(T(t).clone()) }
void at_detach(at_tensor t, at_tensor *out) { OUT(T(t).detach()) }

void at_set_requires_grad(at_tensor t, int requires) { PROTECT(T(t).set_requires_grad(requires != 0);) }
void at_grad(at_tensor t, at_tensor *out) {
    *out = nullptr;
    PROTECT(
        auto g = T(t).grad();
        if (g.defined()) *out = wrap(g);
    )
}
void at_grad_set_none(at_tensor t) { PROTECT(T(t).mutable_grad().reset();) }
void at_backward(at_tensor t, at_tensor grad_or_null, int retain_graph) {
    PROTECT(
        if (grad_or_null) T(t).backward(T(grad_or_null), retain_graph != 0);
        else T(t).backward({}, retain_graph != 0);
    )
}

void at_copy_(at_tensor dst, at_tensor src) { PROTECT(T(dst).copy_(T(src));) }
void at_fill_(at_tensor t, double value) { PROTECT(T(t).fill_(value);) }
void at_uniform_(at_tensor t, double low, double high) { PROTECT(T(t).uniform_(low, high);) }
void at_normal_(at_tensor t, double mean, double std) { PROTECT(T(t).normal_(mean, std);) }
void at_bernoulli_(at_tensor t, double p) { PROTECT(T(t).bernoulli_(p);) }
void at_add_(at_tensor t, at_tensor other, double alpha) { PROTECT(T(t).add_(T(other), alpha);) }
void at_add_scalar_(at_tensor t, double value) {
    // An integral tensor (BatchNorm's num_batches_tracked) must get an integral scalar.
    PROTECT(
        if (at::isIntegralType(T(t).scalar_type(), true)) T(t).add_(static_cast<int64_t>(value));
        else T(t).add_(value);
    )
}
void at_mul_(at_tensor t, at_tensor other) { PROTECT(T(t).mul_(T(other));) }
void at_mul_scalar_(at_tensor t, double value) { PROTECT(T(t).mul_(value);) }
void at_addcmul_(at_tensor t, at_tensor a, at_tensor b, double value) { PROTECT(T(t).addcmul_(T(a), T(b), value);) }
void at_addcdiv_(at_tensor t, at_tensor a, at_tensor b, double value) { PROTECT(T(t).addcdiv_(T(a), T(b), value);) }
void at_lerp_(at_tensor t, at_tensor end, double weight) { PROTECT(T(t).lerp_(T(end), weight);) }
void at_clamp_max_tensor_(at_tensor t, at_tensor max) { PROTECT(T(t).clamp_max_(T(max));) }

void at_clip_grad_norm(const at_tensor *params, int n, double max_norm, double *total) {
    *total = 0;
    PROTECT(
        std::vector<at::Tensor> grads;
        for (int i = 0; i < n; ++i) {
            const auto &g = T(params[i]).grad();
            if (g.defined()) grads.push_back(g);
        }
        if (grads.empty()) return;
        at::NoGradGuard no_grad;
        auto norms = at::_foreach_norm(grads, 2.0);
        auto norm = at::linalg_vector_norm(at::stack(norms), 2.0);
        auto coefficient = (max_norm / (norm + 1e-6)).clamp_max(1.0);
        at::_foreach_mul_(grads, coefficient);
        *total = norm.item<double>();
    )
}

void at_unary(int op, at_tensor t, at_tensor *out) {
    *out = nullptr;
    PROTECT(
        const auto &x = T(t);
        at::Tensor r;
        switch (op) {
            case 0: r = x.neg(); break;
            case 1: r = x.exp(); break;
            case 2: r = x.log(); break;
            case 3: r = x.sqrt(); break;
            case 4: r = x.sigmoid(); break;
            case 5: r = x.relu(); break;
            case 6: r = at::silu(x); break;
            case 7: r = at::gelu(x); break;
            case 8: r = x.tanh(); break;
            case 9: r = x.abs(); break;
            case 10: r = at::log_sigmoid(x); break;
            case 11: r = x.square(); break;
            case 12: r = x.reciprocal(); break;
            case 13: r = x.isfinite(); break;
            default: TORCH_CHECK(false, "unknown unary op ", op);
        }
        *out = wrap(r);
    )
}

void at_binary(int op, at_tensor a, at_tensor b, at_tensor *out) {
    *out = nullptr;
    PROTECT(
        const auto &x = T(a);
        const auto &y = T(b);
        at::Tensor r;
        switch (op) {
            case 0: r = x + y; break;
            case 1: r = x - y; break;
            case 2: r = x * y; break;
            case 3: r = x / y; break;
            case 4: r = at::maximum(x, y); break;
            case 5: r = at::minimum(x, y); break;
            case 6: r = at::matmul(x, y); break;
            case 7: r = at::pow(x, y); break;
            default: TORCH_CHECK(false, "unknown binary op ", op);
        }
        *out = wrap(r);
    )
}

void at_scalar_op(int op, at_tensor t, double s, at_tensor *out) {
    *out = nullptr;
    PROTECT(
        const auto &x = T(t);
        at::Tensor r;
        switch (op) {
            case 0: r = x + s; break;
            case 1: r = x - s; break;
            case 2: r = x * s; break;
            case 3: r = x / s; break;
            case 4: r = x.pow(s); break;
            case 5: r = at::rsub(x, s); break;
            case 6: r = x.clamp_min(s); break;
            case 7: r = x.clamp_max(s); break;
            case 8: r = x.eq(s); break;
            case 9: r = x.ge(s); break;
            case 10: r = x.gt(s); break;
            case 11: r = x.le(s); break;
            case 12: r = x.lt(s); break;
            default: TORCH_CHECK(false, "unknown scalar op ", op);
        }
        *out = wrap(r);
    )
}

void at_where(at_tensor cond, at_tensor a, at_tensor b, at_tensor *out) { OUT(at::where(T(cond), T(a), T(b))) }
void at_softmax(at_tensor t, int64_t dim, at_tensor *out) { OUT(T(t).softmax(dim)) }
void at_log_softmax(at_tensor t, int64_t dim, at_tensor *out) { OUT(T(t).log_softmax(dim)) }

void at_reduce(int op, at_tensor t, const int64_t *ds, int ndims, int keepdim, at_tensor *out) {
    *out = nullptr;
    PROTECT(
        const auto &x = T(t);
        bool all = ndims == 0;
        auto d = dims(ds, ndims);
        at::Tensor r;
        switch (op) {
            case 0: r = all ? x.sum() : x.sum(d, keepdim != 0); break;
            case 1: r = all ? x.mean() : x.mean(d, keepdim != 0); break;
            case 2: r = all ? x.max() : x.amax(d, keepdim != 0); break;
            case 3: r = all ? x.min() : x.amin(d, keepdim != 0); break;
            case 4: r = all ? x.norm() : at::norm(x, 2, d, keepdim != 0); break;
            case 5: r = all ? x.all() : x.all(d, keepdim != 0); break;
            default: TORCH_CHECK(false, "unknown reduction ", op);
        }
        *out = wrap(r);
    )
}
void at_argmax(at_tensor t, int64_t dim, int keepdim, at_tensor *out) { OUT(T(t).argmax(dim, keepdim != 0)) }

void at_reshape(at_tensor t, const int64_t *shape, int ndim, at_tensor *out) { OUT(T(t).reshape(dims(shape, ndim))) }
void at_permute(at_tensor t, const int64_t *ds, int ndim, at_tensor *out) { OUT(T(t).permute(dims(ds, ndim))) }
void at_transpose(at_tensor t, int64_t a, int64_t b, at_tensor *out) { OUT(T(t).transpose(a, b)) }
void at_expand(at_tensor t, const int64_t *shape, int ndim, at_tensor *out) { OUT(T(t).expand(dims(shape, ndim))) }
void at_flatten(at_tensor t, int64_t start, int64_t end, at_tensor *out) { OUT(T(t).flatten(start, end)) }
void at_unsqueeze(at_tensor t, int64_t dim, at_tensor *out) { OUT(T(t).unsqueeze(dim)) }
void at_squeeze(at_tensor t, int64_t dim, at_tensor *out) { OUT(T(t).squeeze(dim)) }
void at_narrow(at_tensor t, int64_t dim, int64_t start, int64_t length, at_tensor *out) {
    OUT(T(t).narrow(dim, start, length))
}
void at_select(at_tensor t, int64_t dim, int64_t index, at_tensor *out) { OUT(T(t).select(dim, index)) }

static std::vector<at::Tensor> tensor_list(const at_tensor *ts, int n) {
    std::vector<at::Tensor> v;
    v.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) v.push_back(T(ts[i]));
    return v;
}
void at_cat(const at_tensor *ts, int n, int64_t dim, at_tensor *out) { OUT(at::cat(tensor_list(ts, n), dim)) }
void at_stack(const at_tensor *ts, int n, int64_t dim, at_tensor *out) { OUT(at::stack(tensor_list(ts, n), dim)) }
void at_gather(at_tensor t, int64_t dim, at_tensor index, at_tensor *out) { OUT(T(t).gather(dim, T(index))) }
void at_index_select(at_tensor t, int64_t dim, at_tensor index, at_tensor *out) {
    OUT(T(t).index_select(dim, T(index)))
}

void at_linear(at_tensor x, at_tensor w, at_tensor b, at_tensor *out) { OUT(at::linear(T(x), T(w), optional_tensor(b))) }
void at_conv3d(at_tensor x, at_tensor w, at_tensor b, const int64_t *stride, const int64_t *padding,
               const int64_t *dilation, int64_t groups, at_tensor *out) {
    OUT(at::conv3d(T(x), T(w), optional_tensor(b), dims(stride, 3), dims(padding, 3), dims(dilation, 3), groups))
}
void at_batch_norm(at_tensor x, at_tensor w, at_tensor b, at_tensor rm, at_tensor rv, int training, double momentum,
                   double eps, at_tensor *out) {
    OUT(at::batch_norm(T(x), optional_tensor(w), optional_tensor(b), optional_tensor(rm), optional_tensor(rv),
                       training != 0, momentum, eps, at::globalContext().userEnabledCuDNN()))
}
void at_layer_norm(at_tensor x, const int64_t *shape, int ndim, at_tensor w, at_tensor b, double eps, at_tensor *out) {
    OUT(at::layer_norm(T(x), dims(shape, ndim), optional_tensor(w), optional_tensor(b), eps))
}
void at_dropout(at_tensor x, double p, int training, at_tensor *out) { OUT(at::dropout(T(x), p, training != 0)) }
void at_adaptive_avg_pool3d(at_tensor x, const int64_t *size, at_tensor *out) {
    OUT(at::adaptive_avg_pool3d(T(x), dims(size, 3)))
}
void at_max_pool3d(at_tensor x, const int64_t *kernel, const int64_t *stride, const int64_t *padding, at_tensor *out) {
    OUT(at::max_pool3d(T(x), dims(kernel, 3), dims(stride, 3), dims(padding, 3)))
}
void at_avg_pool3d(at_tensor x, const int64_t *kernel, const int64_t *stride, const int64_t *padding, at_tensor *out) {
    OUT(at::avg_pool3d(T(x), dims(kernel, 3), dims(stride, 3), dims(padding, 3)))
}
void at_scaled_dot_product_attention(at_tensor q, at_tensor k, at_tensor v, double dropout, int causal, at_tensor *out) {
    OUT(at::scaled_dot_product_attention(T(q), T(k), T(v), c10::nullopt, dropout, causal != 0))
}
void at_upsample_trilinear3d(at_tensor x, const int64_t *size, at_tensor *out) {
    OUT(at::upsample_trilinear3d(T(x), dims(size, 3), false))
}

// --- loader ---
void at_empty_pinned(const int64_t *shape, int ndim, int dtype, at_tensor *out) {
    OUT(torch::empty(dims(shape, ndim), options(dtype, -1).pinned_memory(torch::cuda::is_available())))
}
void at_to_non_blocking(at_tensor t, int dtype, int device, int non_blocking, at_tensor *out) {
    OUT(T(t).to(device_of(device), static_cast<at::ScalarType>(dtype), non_blocking != 0))
}
void at_flip(at_tensor t, const int64_t *ds, int ndim, at_tensor *out) { OUT(T(t).flip(dims(ds, ndim))) }
void at_index_copy(at_tensor t, int64_t dim, at_tensor index, at_tensor source, at_tensor *out) {
    OUT(T(t).index_copy(dim, T(index), T(source)))
}
void at_affine_grid(at_tensor theta, const int64_t *size, int ndim, int align_corners, at_tensor *out) {
    OUT(at::affine_grid_generator(T(theta), dims(size, ndim), align_corners != 0))
}
void at_grid_sample(at_tensor input, at_tensor grid, int mode, int padding, int align_corners, at_tensor *out) {
    OUT(at::grid_sampler(T(input), T(grid), mode, padding, align_corners != 0))
}
int64_t at_storage_use_count(at_tensor t) {
    int64_t n = 0;
    PROTECT(n = static_cast<int64_t>(T(t).storage().use_count());)
    return n;
}
void at_alias(at_tensor t, at_tensor *out) { OUT(T(t).alias()) }
char *atg_library_path(void) {
    auto path = libtorch_library_path();
    return path.empty() ? nullptr : copy_string(path);
}

int atg_cuda_runtime_version(void) {
    // A CPU-only libtorch's hooks throw here: that means "no CUDA", not an error for the caller.
    try {
        return static_cast<int>(at::detail::getCUDAHooks().versionCUDART());
    } catch (...) {
        return 0;
    }
}

int atg_cuda_device_count(void) {
    try {
        return static_cast<int>(torch::cuda::device_count());
    } catch (...) {
        return 0;
    }
}

char *atg_cuda_load_error(void) { return cuda_part.error.empty() ? nullptr : copy_string(cuda_part.error); }

char *atg_cuda_device_name(int index) {
    // The driver API needs no CUDA headers, so a CPU-only build of the shim can name the GPUs too.
    void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (driver == nullptr) return nullptr;
    using Init = int (*)(unsigned);
    using Get = int (*)(int *, int);
    using Name = int (*)(char *, int, int);
    auto init = reinterpret_cast<Init>(dlsym(driver, "cuInit"));
    auto get = reinterpret_cast<Get>(dlsym(driver, "cuDeviceGet"));
    auto name = reinterpret_cast<Name>(dlsym(driver, "cuDeviceGetName"));
    char buffer[256] = {0};
    int device = 0;
    if (!init || !get || !name || init(0) != 0 || get(&device, index) != 0 || name(buffer, sizeof buffer, device) != 0)
        return nullptr;
    return copy_string(buffer);
}

}  // extern "C"
