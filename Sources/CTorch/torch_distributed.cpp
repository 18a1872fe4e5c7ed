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

#include <chrono>
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

// One bucket in flight: its flattened gradients, the all-reduce working on them, and the tensors it covers.
struct Bucket {
    std::vector<at::Tensor> flat;
    c10::intrusive_ptr<c10d::Work> work;
    int64_t begin = 0;
    int64_t end = 0;
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

void atd_all_reduce_buckets(atd_group group, const at_tensor *ts, int n, const int64_t *bucket_ends, int buckets,
                            double scale) {
#if FUSE3D_C10D
    PROTECT(
        auto &g = G(group);
        at::NoGradGuard no_grad;
        std::vector<Bucket> pending;
        int64_t begin = 0;
        for (int b = 0; b < buckets; ++b) {
            int64_t end = bucket_ends[b];
            TORCH_CHECK(end > begin && end <= n, "bucket ", b, " ends at ", end, " after ", begin, " of ", n);
            std::vector<at::Tensor> parts;
            for (int64_t i = begin; i < end; ++i) parts.push_back(T(ts[i]).reshape({-1}));
            // One contiguous buffer per bucket: a single message per bucket instead of one per tensor.
            auto flat = at::cat(parts).mul_(scale);
            c10d::AllreduceOptions options;
            options.timeout = g.timeout;
            Bucket p;
            p.flat.push_back(flat);
            p.begin = begin;
            p.end = end;
            p.work = g.backend->allreduce(p.flat, options);
            pending.push_back(std::move(p));
            begin = end;
        }
        TORCH_CHECK(begin == n, "the buckets cover ", begin, " of ", n, " tensors");
        for (auto &p : pending) {
            await(g, p.work, "gradient all-reduce");
            int64_t offset = 0;
            for (int64_t i = p.begin; i < p.end; ++i) {
                auto &t = T(ts[i]);
                t.copy_(p.flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
                offset += t.numel();
            }
        }
    )
#else
    (void)group, (void)ts, (void)n, (void)bucket_ends, (void)buckets, (void)scale;
    NO_C10D;
#endif
}

void atd_broadcast(atd_group group, at_tensor t, int root) {
#if FUSE3D_C10D
    PROTECT(
        auto &g = G(group);
        std::vector<at::Tensor> tensors{T(t)};
        c10d::BroadcastOptions options;
        options.rootRank = root;
        options.timeout = g.timeout;
        await(g, g.backend->broadcast(tensors, options), "broadcast");
    )
#else
    (void)group, (void)t, (void)root;
    NO_C10D;
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
