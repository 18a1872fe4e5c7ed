// Data-parallel collectives for fuse3d train, over PyTorch's own c10d: a TCPStore where the ranks meet
// (torchrun's agent store, or one served by rank 0), then ProcessGroupGloo on the CPU or ProcessGroupNCCL
// on CUDA, both already compiled into libtorch (libtorch_cpu, libtorch_cuda).
//
// What scripts/build-torch-shim.sh decides, and why (docs/own-pytorch.md has the whole story):
// - FUSE3D_C10D: libtorch exports c10d (a build with USE_DISTRIBUTED). Without it this file compiles to
//   functions that fail with a message, so the bridge still loads and trains in one process.
// - FUSE3D_C10D_GLOO: ProcessGroupGloo.hpp includes Gloo's headers, which the wheel does not ship; the
//   build uses Debian's libgloo-dev (an older Gloo than the one vendored into libtorch). That is sound
//   because this file only names Gloo's types behind std::shared_ptr / intrusive_ptr and never calls or
//   lays out one of them: the build script refuses a shim whose symbols mention `gloo::` at all.
// - FUSE3D_C10D_NCCL: a CUDA libtorch with ProcessGroupNCCL and NCCL's header; links libtorch_cuda.
#include "ctorch.h"

#include <torch/version.h>

#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wc++20-extensions"
#include <torch/torch.h>
#pragma clang diagnostic pop

#include "shim_support.h"

#if FUSE3D_C10D
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#if FUSE3D_C10D_GLOO
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if FUSE3D_C10D_NCCL
#define USE_C10D_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using ctorch::T;

#if FUSE3D_C10D
namespace {
// A joined group: the store keeps the meeting point alive (rank 0 may serve it), the backend does the work.
struct Group {
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::Backend> backend;
    int rank, world;
    std::chrono::milliseconds timeout;
};

Group &G(atd_group g) { return *static_cast<Group *>(g); }

// Waits for a collective; a dead or late peer becomes one sentence naming this rank and the operation.
void await(Group &group, const c10::intrusive_ptr<c10d::Work> &work, const char *what) {
    try {
        work->wait(group.timeout);
    } catch (const std::exception &e) {
        throw std::runtime_error("rank " + std::to_string(group.rank) + " of " + std::to_string(group.world) + ": " +
                                 what + " failed (another rank died, or did not arrive within " +
                                 std::to_string(group.timeout.count() / 1000) + " s): " + e.what());
    }
}

// Tensors of any dtypes packed into one byte buffer, so that one broadcast carries them all; each starts at a
// multiple of 8 bytes, so that its bytes can be viewed as its own dtype in place.
struct Packed {
    std::vector<at::Tensor> tensors;
    std::vector<int64_t> offsets;
    at::Tensor bytes;

    explicit Packed(std::vector<at::Tensor> ts) : tensors(std::move(ts)) {
        int64_t size = 0;
        for (auto &t : tensors) {
            offsets.push_back(size);
            size += (t.numel() * static_cast<int64_t>(t.element_size()) + 7) / 8 * 8;
        }
        auto device = tensors.empty() ? at::Device(at::kCPU) : tensors[0].device();
        bytes = at::empty({size}, at::TensorOptions().dtype(at::kByte).device(device));
    }

    at::Tensor view(size_t i) {
        auto &t = tensors[i];
        return bytes.narrow(0, offsets[i], t.numel() * static_cast<int64_t>(t.element_size())).view(t.scalar_type()).view(t.sizes());
    }

    void pack() {
        at::NoGradGuard no_grad;
        for (size_t i = 0; i < tensors.size(); ++i) view(i).copy_(tensors[i]);
    }

    void unpack() {
        at::NoGradGuard no_grad;
        for (size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(view(i));
    }

    c10::intrusive_ptr<c10d::Work> broadcast(Group &g, int root) {
        std::vector<at::Tensor> list{bytes};
        c10d::BroadcastOptions options;
        options.rootRank = root;
        options.timeout = g.timeout;
        return g.backend->broadcast(list, options);
    }
};

// DDP's reducer in small. The parameters, in the order backward produces their gradients, are laid out bucket by
// bucket, each bucket one flat buffer: its gradients, then one "had a gradient" flag per parameter. A hook on each
// parameter (run by AccumulateGrad once its gradient is complete) copies the gradient into its slot, scaled by the
// parameter's factor; a bucket whose slots are all filled is scaled by the step's common factor and its all-reduce
// starts at once, while backward goes on. Buckets start in their index order only, so every rank issues the same
// collectives in the same order whatever order its gradients come in. `finish` fills the slots no hook filled (a
// parameter this rank gave no gradient adds zeros), starts what is left, waits, and writes the sums back; a
// parameter no rank gave a gradient keeps none, as in one process.
struct Reducer {
    struct Slot {
        size_t bucket;
        int64_t offset;  // in the bucket's flat buffer
        bool filled;
    };
    struct Bucket {
        size_t begin = 0, end = 0;  // its parameters
        int64_t numel = 0;          // gradient elements; the flags follow them
        size_t unfilled = 0;
        bool complete_locally = true;  // every parameter had a gradient on this rank
        at::Tensor flat, flags;        // flags: CPU float32, one per parameter
        c10::intrusive_ptr<c10d::Work> work;
    };

    Group *group = nullptr;
    std::vector<at::Tensor> parameters;
    std::vector<Slot> slots;
    std::vector<Bucket> buckets;
    std::vector<double> factors;
    double scale = 1;
    bool armed = false;
    size_t next = 0;  // the first bucket not started
    int started_during_backward = 0;
    std::unique_ptr<Packed> buffers;
    c10::intrusive_ptr<c10d::Work> buffer_work;
    std::mutex mutex;

    // From parameter i's hook: its gradient is complete.
    void ready(size_t i, const at::Tensor &grad) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!armed || slots[i].filled) return;
        fill(i, grad);
        start_complete_buckets(true);
    }

    void fill(size_t i, const at::Tensor &grad) {
        at::NoGradGuard no_grad;
        auto &slot = slots[i];
        auto &bucket = buckets[slot.bucket];
        auto target = bucket.flat.narrow(0, slot.offset, parameters[i].numel());
        if (grad.defined()) {
            target.copy_(grad.reshape({-1}));
            if (factors[i] != 1.0) target.mul_(factors[i]);
        } else {
            target.zero_();
            bucket.complete_locally = false;
        }
        bucket.flags.data_ptr<float>()[i - bucket.begin] = grad.defined() ? 1.0f : 0.0f;
        slot.filled = true;
        bucket.unfilled -= 1;
    }

    void start_complete_buckets(bool during_backward) {
        at::NoGradGuard no_grad;
        while (next < buckets.size() && buckets[next].unfilled == 0) {
            auto &bucket = buckets[next];
            bucket.flat.narrow(0, 0, bucket.numel).mul_(scale);
            bucket.flat.narrow(0, bucket.numel, static_cast<int64_t>(bucket.end - bucket.begin)).copy_(bucket.flags);
            std::vector<at::Tensor> tensors{bucket.flat};
            c10d::AllreduceOptions options;
            options.timeout = group->timeout;
            bucket.work = group->backend->allreduce(tensors, options);
            if (during_backward) started_during_backward += 1;
            next += 1;
        }
    }

    // Waits for whatever an interrupted step left in flight, so that a new step starts clean.
    void drain() {
        for (auto &bucket : buckets) {
            if (bucket.work) {
                try { bucket.work->wait(group->timeout); } catch (const std::exception &) {}
                bucket.work.reset();
            }
        }
        if (buffer_work) {
            try { buffer_work->wait(group->timeout); } catch (const std::exception &) {}
            buffer_work.reset();
        }
    }

    void begin(const double *step_factors, double step_scale) {
        std::lock_guard<std::mutex> lock(mutex);
        drain();
        factors.assign(step_factors, step_factors + parameters.size());
        scale = step_scale;
        for (auto &slot : slots) slot.filled = false;
        for (auto &bucket : buckets) {
            bucket.unfilled = bucket.end - bucket.begin;
            bucket.complete_locally = true;
        }
        next = 0;
        started_during_backward = 0;
        // The buffers (BatchNorm's statistics) are final once the forward pass is: their broadcast overlaps backward.
        if (buffers->bytes.numel() > 0) {
            buffers->pack();
            buffer_work = buffers->broadcast(*group, 0);
        }
        armed = true;
    }

    void finish() {
        std::lock_guard<std::mutex> lock(mutex);
        TORCH_CHECK(armed, "the gradient reducer finished a step it never began");
        armed = false;
        for (size_t i = 0; i < parameters.size(); ++i) {
            if (!slots[i].filled) fill(i, parameters[i].grad());
        }
        start_complete_buckets(false);
        at::NoGradGuard no_grad;
        for (auto &bucket : buckets) {
            await(*group, bucket.work, "gradient all-reduce");
            bucket.work.reset();
            // Which parameters some rank gave a gradient: read only where this rank lacked one (a host read).
            at::Tensor used;
            if (!bucket.complete_locally) {
                used = bucket.flat.narrow(0, bucket.numel, static_cast<int64_t>(bucket.end - bucket.begin))
                           .to(at::kCPU, at::kFloat);
            }
            for (size_t i = bucket.begin; i < bucket.end; ++i) {
                auto &p = parameters[i];
                auto sum = bucket.flat.narrow(0, slots[i].offset, p.numel()).view(p.sizes());
                if (p.grad().defined()) {
                    p.mutable_grad().copy_(sum);
                } else if (used.defined() && used.data_ptr<float>()[i - bucket.begin] > 0) {
                    p.mutable_grad() = sum.clone();
                }
            }
        }
        if (buffer_work) {
            await(*group, buffer_work, "buffer broadcast");
            buffer_work.reset();
            if (group->rank != 0) buffers->unpack();
        }
    }
};

// Tells the reducer that a parameter's gradient is complete. It holds the reducer weakly: once the reducer is freed
// (and before, outside a step) it does nothing.
struct GradReadyHook : torch::autograd::PostAccumulateGradHook {
    std::weak_ptr<Reducer> reducer;
    size_t index;
    GradReadyHook(std::weak_ptr<Reducer> r, size_t i) : reducer(std::move(r)), index(i) {}
    void operator()(const torch::autograd::Variable &parameter) override {
        if (auto r = reducer.lock()) r->ready(index, parameter.grad());
    }
};

struct ReducerHandle {
    std::shared_ptr<Reducer> reducer;
};

c10d::ReduceOp reduce_op(int op) {
    switch (op) {
        case 0: return c10d::ReduceOp::SUM;
        case 1: return c10d::ReduceOp::MAX;
        case 2: return c10d::ReduceOp::MIN;
        default: break;
    }
    TORCH_CHECK(false, "unknown reduce op ", op, " (0 sum, 1 max, 2 min)");
}
}  // namespace
#endif

#define NO_C10D                                                                                                     \
    ctorch::set_error("distributed training needs a libtorch built with c10d (USE_DISTRIBUTED); this bridge was " \
                      "built against one without it: rebuild it with `make torch` against a PyTorch from pytorch.org")

extern "C" {

int atd_backends(void) {
    int backends = 0;
#if FUSE3D_C10D_GLOO
    backends |= 1;
#endif
#if FUSE3D_C10D_NCCL
    backends |= 2;
#endif
    return backends;
}

void atd_init(const char *host, int port, int rank, int world, int serve_store, const char *prefix,
              int64_t timeout_ms, int backend, int device, atd_group *out) {
    *out = nullptr;
#if FUSE3D_C10D
    PROTECT(
        TORCH_CHECK(world >= 1 && rank >= 0 && rank < world, "rank ", rank, " is not in a world of ", world);
        TORCH_CHECK(port > 0 && port < 65536, "store port ", port, " is not a TCP port");
        auto timeout = std::chrono::milliseconds(timeout_ms);
        c10d::TCPStoreOptions options;
        options.port = static_cast<std::uint16_t>(port);
        options.isServer = serve_store != 0;
        options.numWorkers = static_cast<std::size_t>(world);
        options.waitWorkers = false;
        options.timeout = timeout;
        c10::intrusive_ptr<c10d::Store> store;
        try {
            store = c10::make_intrusive<c10d::TCPStore>(host, options);
        } catch (const std::exception &e) {
            throw std::runtime_error("rank " + std::to_string(rank) + " of " + std::to_string(world) +
                                     ": cannot reach the rendezvous store at " + host + ":" + std::to_string(port) +
                                     " within " + std::to_string(timeout_ms / 1000) + " s: " + e.what());
        }
        if (prefix != nullptr && prefix[0] != 0) store = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
        store = c10::make_intrusive<c10d::PrefixStore>("fuse3d", store);
        auto group = std::make_unique<Group>();
        group->store = store;
        group->rank = rank;
        group->world = world;
        group->timeout = timeout;
        if (backend == 0) {
#if FUSE3D_C10D_GLOO
            // create_default binds to GLOO_SOCKET_IFNAME's interfaces when set, else this host's address.
            auto gloo = c10d::ProcessGroupGloo::Options::create_default(timeout);
            group->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, gloo);
#else
            TORCH_CHECK(false, "this bridge was built without Gloo's headers: install libgloo-dev (scripts/setup.sh) "
                               "and rebuild it with `make torch`");
#endif
        } else if (backend == 1) {
#if FUSE3D_C10D_NCCL
            at::cuda::set_device(static_cast<c10::DeviceIndex>(device));
            auto nccl = c10d::ProcessGroupNCCL::Options::create();
            nccl->timeout = timeout;
            group->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, nccl);
#else
            (void)device;
            TORCH_CHECK(false, "this bridge was built without NCCL (a CPU libtorch, or no nccl.h): train on CUDA with "
                               "the Gloo backend, or rebuild the bridge against a CUDA PyTorch with `make torch`");
#endif
        } else {
            TORCH_CHECK(false, "unknown backend ", backend, " (0 Gloo, 1 NCCL)");
        }
        *out = group.release();
    )
#else
    (void)host, (void)port, (void)rank, (void)world, (void)serve_store, (void)prefix, (void)timeout_ms;
    (void)backend, (void)device;
    NO_C10D;
#endif
}

void atd_free(atd_group group) {
#if FUSE3D_C10D
    delete static_cast<Group *>(group);
#else
    (void)group;
#endif
}

char *atd_backend_name(atd_group group) {
#if FUSE3D_C10D
    char *name = nullptr;
    PROTECT(name = ctorch::copy_string(G(group).backend->getBackendName());)
    return name;
#else
    (void)group;
    NO_C10D;
    return nullptr;
#endif
}

void atd_all_reduce(atd_group group, at_tensor t, int op) {
#if FUSE3D_C10D
    PROTECT(
        auto &g = G(group);
        std::vector<at::Tensor> tensors{T(t)};
        c10d::AllreduceOptions options;
        options.reduceOp = reduce_op(op);
        options.timeout = g.timeout;
        await(g, g.backend->allreduce(tensors, options), "all-reduce");
    )
#else
    (void)group, (void)t, (void)op;
    NO_C10D;
#endif
}

void atd_broadcast(atd_group group, const at_tensor *ts, int n, int root) {
#if FUSE3D_C10D
    PROTECT(
        auto &g = G(group);
        std::vector<at::Tensor> tensors;
        for (int i = 0; i < n; ++i) tensors.push_back(T(ts[i]));
        Packed packed(std::move(tensors));
        if (packed.bytes.numel() > 0) {
            packed.pack();
            await(g, packed.broadcast(g, root), "broadcast");
            if (g.rank != root) packed.unpack();
        }
    )
#else
    (void)group, (void)ts, (void)n, (void)root;
    NO_C10D;
#endif
}

void atd_reducer_new(atd_group group, const at_tensor *parameters, int n, const int64_t *bucket_ends, int buckets,
                     const at_tensor *buffers, int nbuffers, atd_reducer *out) {
    *out = nullptr;
#if FUSE3D_C10D
    PROTECT(
        auto reducer = std::make_shared<Reducer>();
        reducer->group = &G(group);
        size_t begin = 0;
        for (int b = 0; b < buckets; ++b) {
            auto end = static_cast<size_t>(bucket_ends[b]);
            TORCH_CHECK(end > begin && end <= static_cast<size_t>(n), "bucket ", b, " ends at ", end, " after ", begin,
                        " of ", n);
            Reducer::Bucket bucket;
            bucket.begin = begin;
            bucket.end = end;
            const auto &first = T(parameters[begin]);
            for (size_t i = begin; i < end; ++i) {
                const auto &p = T(parameters[i]);
                TORCH_CHECK(p.requires_grad(), "parameter ", i, " does not require a gradient");
                TORCH_CHECK(p.scalar_type() == first.scalar_type() && p.device() == first.device(), "bucket ", b,
                            " mixes dtypes or devices (parameter ", i, ")");
                reducer->parameters.push_back(p);
                reducer->slots.push_back({static_cast<size_t>(b), bucket.numel, false});
                bucket.numel += p.numel();
            }
            auto count = static_cast<int64_t>(end - begin);
            bucket.flat = at::empty({bucket.numel + count}, first.options().requires_grad(false));
            bucket.flags = at::zeros({count}, at::kFloat);
            reducer->buckets.push_back(std::move(bucket));
            begin = end;
        }
        TORCH_CHECK(begin == static_cast<size_t>(n), "the buckets cover ", begin, " of ", n, " parameters");
        std::vector<at::Tensor> held;
        for (int i = 0; i < nbuffers; ++i) held.push_back(T(buffers[i]));
        reducer->buffers = std::make_unique<Packed>(std::move(held));
        for (size_t i = 0; i < reducer->parameters.size(); ++i) {
            torch::autograd::impl::set_post_acc_grad_hooks(reducer->parameters[i],
                                                            std::make_unique<GradReadyHook>(reducer, i));
        }
        *out = new ReducerHandle{std::move(reducer)};
    )
#else
    (void)group, (void)parameters, (void)n, (void)bucket_ends, (void)buckets, (void)buffers, (void)nbuffers;
    NO_C10D;
#endif
}

void atd_reducer_free(atd_reducer reducer) {
#if FUSE3D_C10D
    auto *handle = static_cast<ReducerHandle *>(reducer);
    if (handle == nullptr) return;
    PROTECT(
        auto &r = *handle->reducer;
        r.drain();
        // Take the hooks off the parameters (the model may train on without this reducer).
        for (auto &p : r.parameters) {
            auto &hook = torch::autograd::impl::post_acc_grad_hooks(p);
            if (dynamic_cast<GradReadyHook *>(hook.get()) != nullptr) hook.reset();
        }
    )
    delete handle;
#else
    (void)reducer;
#endif
}

void atd_reducer_begin(atd_reducer reducer, const double *factors, double scale) {
#if FUSE3D_C10D
    PROTECT(static_cast<ReducerHandle *>(reducer)->reducer->begin(factors, scale);)
#else
    (void)reducer, (void)factors, (void)scale;
    NO_C10D;
#endif
}

void atd_reducer_finish(atd_reducer reducer) {
#if FUSE3D_C10D
    PROTECT(static_cast<ReducerHandle *>(reducer)->reducer->finish();)
#else
    (void)reducer;
    NO_C10D;
#endif
}

int atd_reducer_started_during_backward(atd_reducer reducer) {
#if FUSE3D_C10D
    return static_cast<ReducerHandle *>(reducer)->reducer->started_during_backward;
#else
    (void)reducer;
    return 0;
#endif
}

void atd_barrier(atd_group group) {
#if FUSE3D_C10D
    PROTECT(
        auto &g = G(group);
        c10d::BarrierOptions options;
        options.timeout = g.timeout;
        await(g, g.backend->barrier(options), "barrier");
    )
#else
    (void)group;
    NO_C10D;
#endif
}

}  // extern "C"
