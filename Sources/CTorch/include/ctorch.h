#ifndef CTORCH_H
#define CTORCH_H
// A C API over libtorch in the style of tch-rs' torch_api.h: opaque handles, one prefix per family
// (at_ tensors, atg_ global state, atd_ distributed), a matching *_free, results through out-parameters, and a
// thread-local last error instead of C++ exceptions crossing into Swift.
//
// How this header is used (read before adding an op):
// - torch_api.cpp implements it and is built by `make torch` into the shared library
//   libfuse3d_torch.so against a chosen libtorch (scripts/build-torch-shim.sh). fuse3d never links
//   libtorch: the CTorch target holds one trampoline per function declared here, jumping through a
//   table that ctorch_loader.c fills with dlsym when the library is first used.
// - That table (ctorch_functions.h) is GENERATED from the declarations below by
//   scripts/gen_torch_stubs.py (`make stubs`; `make build`, `make test` and `make torch` run it too).
//   To add an op: declare it here, implement it in torch_api.cpp, run `make stubs`, commit both.
//   TorchBridgeTests fails while the committed table is stale.
// - Declarations must be plain C prototypes with named parameters (no function-pointer or array
//   parameters, no macros in signatures). Each one changes CTORCH_ABI_HASH, so a shim built from an
//   older header is refused with a message saying how to rebuild it.
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/** An owned reference to a libtorch tensor (a heap-allocated at::Tensor); free with at_free. */
typedef void *at_tensor;

/** Dtype codes are c10::ScalarType values (4 int64, 5 float16, 6 float32, 11 bool, 15 bfloat16, ...). */
/** Device codes: -1 is the CPU, n >= 0 is CUDA device n. */

/** libtorch's version string. */
const char *at_version(void);
/** The calling thread's last error (malloc'd; free with at_string_free), or NULL; clears it. */
char *at_take_error(void);
/** Frees a string returned by the shim. */
void at_string_free(char *s);

/* ---- global state ---- */
/** 1 when a CUDA device is usable. */
int atg_cuda_is_available(void);
/** Seeds every libtorch generator (CPU and CUDA). */
void atg_manual_seed(uint64_t seed);
/** Sets / gets the intra-op thread count. */
void atg_set_num_threads(int n);
int atg_get_num_threads(void);
/** Enables or disables gradient recording on this thread; returns the previous setting. */
int atg_set_grad_enabled(int enabled);
/** Enters autocast for a device type (0 CPU, 1 CUDA) with a dtype code; atg_autocast_exit leaves it. */
void atg_autocast_enter(int cuda, int dtype);
void atg_autocast_exit(int cuda);
/** The CPU generator's state as a uint8 tensor, and restoring it. */
void atg_get_rng_state(at_tensor *out);
void atg_set_rng_state(at_tensor state);
/** The default CUDA generator's state of GPU `device` as a uint8 tensor, and restoring it (an error on a CPU-only libtorch). */
void atg_get_cuda_rng_state(int device, at_tensor *out);
void atg_set_cuda_rng_state(int device, at_tensor state);

/* ---- creation and lifetime ---- */
void at_free(at_tensor t);
void at_empty(const int64_t *shape, int ndim, int dtype, int device, at_tensor *out);
void at_full(const int64_t *shape, int ndim, double value, int dtype, int device, at_tensor *out);
void at_rand(const int64_t *shape, int ndim, int dtype, int device, at_tensor *out);
void at_randn(const int64_t *shape, int ndim, int dtype, int device, at_tensor *out);
void at_arange(double start, double end, double step, int dtype, int device, at_tensor *out);
/** A tensor holding a copy of `data` (one memcpy into fresh storage on the CPU, or one transfer). */
void at_from_data(const void *data, const int64_t *shape, int ndim, int dtype, int device, at_tensor *out);
/** A new handle sharing `t`'s storage and autograd identity. */
void at_shallow_clone(at_tensor t, at_tensor *out);

/* ---- properties and data ---- */
int at_dim(at_tensor t);
void at_shape(at_tensor t, int64_t *dims);
int at_dtype(at_tensor t);
int at_device(at_tensor t);
int64_t at_numel(at_tensor t);
size_t at_element_size(at_tensor t);
int at_requires_grad(at_tensor t);
int at_is_contiguous(at_tensor t);
/** The first element's address of a contiguous CPU tensor (NULL + error otherwise). */
void *at_data_ptr(at_tensor t);
/** Copies a tensor's elements in row-major order into `dst` (nbytes must equal numel * element size). */
void at_copy_data(at_tensor t, void *dst, size_t nbytes);
void at_item(at_tensor t, double *out);
void at_to(at_tensor t, int dtype, int device, at_tensor *out);
/** memory_format: 0 contiguous, 1 channels-last-3d. */
void at_contiguous(at_tensor t, int memory_format, at_tensor *out);
void at_clone(at_tensor t, at_tensor *out);
void at_detach(at_tensor t, at_tensor *out);

/* ---- autograd ---- */
void at_set_requires_grad(at_tensor t, int requires);
/** The accumulated gradient, or *out = NULL when none was computed. */
void at_grad(at_tensor t, at_tensor *out);
/** Drops the accumulated gradient (PyTorch's set_to_none). */
void at_grad_set_none(at_tensor t);
void at_backward(at_tensor t, at_tensor grad_or_null, int retain_graph);

/* ---- in-place (the optimizers' and initialisers' vocabulary) ---- */
void at_copy_(at_tensor dst, at_tensor src);
void at_fill_(at_tensor t, double value);
void at_uniform_(at_tensor t, double low, double high);
void at_normal_(at_tensor t, double mean, double std);
void at_bernoulli_(at_tensor t, double p);
void at_add_(at_tensor t, at_tensor other, double alpha);
void at_add_scalar_(at_tensor t, double value);
void at_mul_(at_tensor t, at_tensor other);
void at_mul_scalar_(at_tensor t, double value);
void at_addcmul_(at_tensor t, at_tensor a, at_tensor b, double value);
void at_addcdiv_(at_tensor t, at_tensor a, at_tensor b, double value);
void at_lerp_(at_tensor t, at_tensor end, double weight);
void at_clamp_max_tensor_(at_tensor t, at_tensor max);

/** torch.nn.utils.clip_grad_norm_ over the gradients of `params` (foreach kernels, as PyTorch on CPU
    and CUDA): scales them so their joint L2 norm is at most max_norm; *total gets the norm before. */
void at_clip_grad_norm(const at_tensor *params, int n, double max_norm, double *total);

/* ---- element-wise ---- */
/** Unary ops by code: 0 neg, 1 exp, 2 log, 3 sqrt, 4 sigmoid, 5 relu, 6 silu, 7 gelu, 8 tanh,
    9 abs, 10 logsigmoid, 11 square, 12 reciprocal, 13 isfinite (bool). */
void at_unary(int op, at_tensor t, at_tensor *out);
/** Binary ops by code: 0 add, 1 sub, 2 mul, 3 div, 4 maximum, 5 minimum, 6 matmul, 7 pow. */
void at_binary(int op, at_tensor a, at_tensor b, at_tensor *out);
/** Ops with a scalar by code: 0 add, 1 sub, 2 mul, 3 div, 4 pow, 5 rsub (s - t), 6 clamp_min,
    7 clamp_max, 8 eq, 9 ge, 10 gt, 11 le, 12 lt. */
void at_scalar_op(int op, at_tensor t, double s, at_tensor *out);
void at_where(at_tensor cond, at_tensor a, at_tensor b, at_tensor *out);
void at_softmax(at_tensor t, int64_t dim, at_tensor *out);
void at_log_softmax(at_tensor t, int64_t dim, at_tensor *out);

/* ---- reductions ---- */
/** op: 0 sum, 1 mean, 2 max, 3 min, 4 L2 norm, 5 all (bool); ndims == 0 reduces everything. */
void at_reduce(int op, at_tensor t, const int64_t *dims, int ndims, int keepdim, at_tensor *out);
void at_argmax(at_tensor t, int64_t dim, int keepdim, at_tensor *out);

/* ---- shape ---- */
void at_reshape(at_tensor t, const int64_t *shape, int ndim, at_tensor *out);
void at_permute(at_tensor t, const int64_t *dims, int ndim, at_tensor *out);
void at_transpose(at_tensor t, int64_t a, int64_t b, at_tensor *out);
void at_expand(at_tensor t, const int64_t *shape, int ndim, at_tensor *out);
void at_flatten(at_tensor t, int64_t start, int64_t end, at_tensor *out);
void at_unsqueeze(at_tensor t, int64_t dim, at_tensor *out);
void at_squeeze(at_tensor t, int64_t dim, at_tensor *out);
void at_narrow(at_tensor t, int64_t dim, int64_t start, int64_t length, at_tensor *out);
void at_select(at_tensor t, int64_t dim, int64_t index, at_tensor *out);
void at_cat(const at_tensor *ts, int n, int64_t dim, at_tensor *out);
void at_stack(const at_tensor *ts, int n, int64_t dim, at_tensor *out);
void at_gather(at_tensor t, int64_t dim, at_tensor index, at_tensor *out);
void at_index_select(at_tensor t, int64_t dim, at_tensor index, at_tensor *out);

/* ---- neural-network functions ---- */
void at_linear(at_tensor x, at_tensor w, at_tensor b_or_null, at_tensor *out);
/** 3D convolution; stride/padding/dilation hold 3 values each. */
void at_conv3d(at_tensor x, at_tensor w, at_tensor b_or_null, const int64_t *stride, const int64_t *padding,
               const int64_t *dilation, int64_t groups, at_tensor *out);
/** Batch norm; in training mode it updates running_mean/var in place. */
void at_batch_norm(at_tensor x, at_tensor w, at_tensor b, at_tensor running_mean, at_tensor running_var,
                   int training, double momentum, double eps, at_tensor *out);
void at_layer_norm(at_tensor x, const int64_t *shape, int ndim, at_tensor w, at_tensor b, double eps, at_tensor *out);
void at_dropout(at_tensor x, double p, int training, at_tensor *out);
void at_adaptive_avg_pool3d(at_tensor x, const int64_t *size, at_tensor *out);
void at_max_pool3d(at_tensor x, const int64_t *kernel, const int64_t *stride, const int64_t *padding, at_tensor *out);
void at_avg_pool3d(at_tensor x, const int64_t *kernel, const int64_t *stride, const int64_t *padding, at_tensor *out);
void at_scaled_dot_product_attention(at_tensor q, at_tensor k, at_tensor v, double dropout, int causal, at_tensor *out);
/** Trilinear resize of a (N, C, D, H, W) tensor to `size` (3 values), align_corners = false. */
void at_upsample_trilinear3d(at_tensor x, const int64_t *size, at_tensor *out);

// --- loader ---
/** An uninitialised CPU tensor in page-locked memory when CUDA is usable (so a copy to the GPU can
    overlap compute), in ordinary memory otherwise. */
void at_empty_pinned(const int64_t *shape, int ndim, int dtype, at_tensor *out);
/** `t.to(device, dtype, non_blocking)`: with non_blocking = 1 a copy from pinned memory is queued on
    the current CUDA stream and returns at once. */
void at_to_non_blocking(at_tensor t, int dtype, int device, int non_blocking, at_tensor *out);
/** torch.flip along `dims`. */
void at_flip(at_tensor t, const int64_t *dims, int ndim, at_tensor *out);
/** Out-of-place index_copy: `t` with the rows `index` (int64) along `dim` replaced by `source`'s. */
void at_index_copy(at_tensor t, int64_t dim, at_tensor index, at_tensor source, at_tensor *out);
/** F.affine_grid(theta (N, 3, 4), size (N, C, D, H, W)) → (N, D, H, W, 3) sampling grid. */
void at_affine_grid(at_tensor theta, const int64_t *size, int ndim, int align_corners, at_tensor *out);
/** F.grid_sample: mode 0 bilinear (trilinear in 3-D), 1 nearest; padding 0 zeros, 1 border, 2 reflection. */
void at_grid_sample(at_tensor input, at_tensor grid, int mode, int padding, int align_corners, at_tensor *out);
/** How many tensors share `t`'s storage (views included): 1 when `t` is the last, so its memory can be reused. */
int64_t at_storage_use_count(at_tensor t);
/** A view of the whole of `t` with its own tensor object (`Tensor.alias()`): its holders count in
    at_storage_use_count. */
void at_alias(at_tensor t, at_tensor *out);
/* ---- the libtorch found (`fuse3d version`) ---- */
/** The path of the libtorch_cpu library the shim runs on (malloc'd; free with at_string_free), or NULL. */
char *atg_library_path(void);
/** The CUDA runtime version libtorch was built with (12080 for 12.8), 0 for a CPU-only libtorch. */
int atg_cuda_runtime_version(void);
/** The number of CUDA devices libtorch sees (0 without CUDA). */
int atg_cuda_device_count(void);
/** Why libtorch's CUDA library is present but failed to load (malloc'd), or NULL when loaded or absent. */
char *atg_cuda_load_error(void);
/** CUDA device `index`'s name from the driver (malloc'd), or NULL without a driver. */
char *atg_cuda_device_name(int index);

/* ---- distributed: c10d process groups (torch_distributed.cpp) ---- */
/** An owned c10d backend (ProcessGroupGloo or ProcessGroupNCCL) joined through a TCPStore; free with atd_free. */
typedef void *atd_group;

/** The c10d backends this bridge was built with: bit 0 Gloo, bit 1 NCCL; 0 for a libtorch without
    distributed support (every other atd_ call then fails with a message saying so). */
int atd_backends(void);
/** Joins a group as rank `rank` of `world`: meets the others at the TCPStore on host:port (served by
    this process when serve_store = 1, else a client), under the key prefix `prefix` ("" for none).
    backend: 0 Gloo, 1 NCCL on CUDA device `device`. `timeout_ms` bounds the meeting and every collective. */
void atd_init(const char *host, int port, int rank, int world, int serve_store, const char *prefix,
              int64_t timeout_ms, int backend, int device, atd_group *out);
void atd_free(atd_group group);
/** The backend's name ("gloo", "nccl"; malloc'd). */
char *atd_backend_name(atd_group group);
/** Reduces `t` in place across the ranks: op 0 sum, 1 max, 2 min. */
void atd_all_reduce(atd_group group, at_tensor t, int op);
/** Copies rank `root`'s tensors `ts` into every rank's, all in one message (their bytes packed together). */
void atd_broadcast(atd_group group, const at_tensor *ts, int n, int root);

/** A data-parallel gradient reducer (PyTorch DDP's reducer in small); free with atd_reducer_free. */
typedef void *atd_reducer;
/** A reducer of the `n` parameters (in the order their gradients are reduced) in buckets: bucket b holds
    parameters[bucket_ends[b - 1] ..< bucket_ends[b]] (one dtype and device), flattened into one buffer. Installs
    a post-accumulate-grad hook on each parameter; `buffers` are broadcast from rank 0 once per step. */
void atd_reducer_new(atd_group group, const at_tensor *parameters, int n, const int64_t *bucket_ends, int buckets,
                     const at_tensor *buffers, int nbuffers, atd_reducer *out);
/** Takes the hooks off the parameters and frees the reducer (after waiting for anything still in flight). */
void atd_reducer_free(atd_reducer reducer);
/** Arms the hooks for one backward pass: parameter i's gradient is multiplied by factors[i] (n of them), each
    bucket by `scale`; a bucket's all-reduce starts once its gradients are all in. Starts the buffers' broadcast. */
void atd_reducer_begin(atd_reducer reducer, const double *factors, double scale);
/** After backward: starts the buckets still waiting (a parameter without a gradient adds zeros), waits for all,
    and writes the sums back as the gradients (a parameter no rank gave a gradient keeps none), and the buffers. */
void atd_reducer_finish(atd_reducer reducer);
/** How many buckets of the last step started during backward (the rest started in atd_reducer_finish). */
int atd_reducer_started_during_backward(atd_reducer reducer);
/** Returns when every rank has called it (or fails after the group's timeout). */
void atd_barrier(atd_group group);

#ifdef __cplusplus
}
#endif
#endif
