#include "process_group.h"

#include <c10/util/Exception.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <torch/csrc/distributed/c10d/GroupRegistry.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#ifdef LIGHTHOUSE_WITH_GLOO
// Gloo's own headers (Debian libgloo-dev, or .deps/include) are needed to
// parse this one; we only pass gloo device handles through, never touch gloo
// types, so the header version need not match the gloo inside libtorch.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef LIGHTHOUSE_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "ops/checks.h"

namespace lighthouse::dist {
namespace {

const char* getenv_or_null(const char* name) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : nullptr;
}

int64_t parse_int(const char* name, const char* text, int64_t lo, int64_t hi) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 10);
  LH_CHECK(errno == 0 && end != text && *end == '\0' && v >= lo && v <= hi, "lighthouse dist: environment variable ",
           name, "='", text, "' must be an integer in [", lo, ", ", hi, "]");
  return v;
}

std::string what_of(const std::exception& e) {
  if (const auto* ce = dynamic_cast<const c10::Error*>(&e)) return ce->what_without_backtrace();
  return e.what();
}

#ifdef LIGHTHOUSE_WITH_GLOO
c10::intrusive_ptr<c10d::Backend> make_gloo(const c10::intrusive_ptr<c10d::Store>& store, int64_t rank, int64_t size,
                                            std::chrono::milliseconds timeout) {
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  // As torch.distributed does: GLOO_SOCKET_IFNAME names the interfaces,
  // else the address this host's name resolves to (loopback if none).
  if (const char* ifnames = getenv_or_null("GLOO_SOCKET_IFNAME")) {
    std::stringstream ss(ifnames);
    std::string name;
    while (std::getline(ss, name, ',')) {
      if (!name.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    }
  }
  if (opts->devices.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(rank), static_cast<int>(size), opts);
}
#endif

#ifdef LIGHTHOUSE_WITH_NCCL
c10::intrusive_ptr<c10d::Backend> make_nccl(const c10::intrusive_ptr<c10d::Store>& store, int64_t rank, int64_t size,
                                            std::chrono::milliseconds timeout) {
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(rank), static_cast<int>(size), opts);
}
#endif

// Distinguishes the groups of successive init() calls in one process (tests).
int next_generation() {
  static int generation = 0;
  return generation++;
}

}  // namespace

bool has_gloo() {
#ifdef LIGHTHOUSE_WITH_GLOO
  return true;
#else
  return false;
#endif
}

bool has_nccl() {
#ifdef LIGHTHOUSE_WITH_NCCL
  return true;
#else
  return false;
#endif
}

Env read_env() {
  static const char* const kRequired[] = {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"};
  std::string present, missing;
  for (const char* name : kRequired) {
    std::string& list = getenv_or_null(name) != nullptr ? present : missing;
    list += list.empty() ? name : std::string(", ") + name;
  }
  Env env;
  if (present.empty()) return env;
  LH_CHECK(missing.empty(), "lighthouse dist: ", present, " set but ", missing,
           " not: start the program with torchrun (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, "
           "MASTER_PORT), or set none of them for a single process");
  env.distributed = true;
  env.world_size = parse_int("WORLD_SIZE", getenv_or_null("WORLD_SIZE"), 1, 1 << 20);
  env.rank = parse_int("RANK", getenv_or_null("RANK"), 0, env.world_size - 1);
  const char* local = getenv_or_null("LOCAL_RANK");
  env.local_rank = local != nullptr ? parse_int("LOCAL_RANK", local, 0, env.world_size - 1) : env.rank;
  env.master_addr = getenv_or_null("MASTER_ADDR");
  env.master_port = parse_int("MASTER_PORT", getenv_or_null("MASTER_PORT"), 1, 65535);
  const char* agent = getenv_or_null("TORCHELASTIC_USE_AGENT_STORE");
  env.agent_store = agent != nullptr && std::string(agent) == "True";
  return env;
}

at::Device local_device(const Env& env, c10::DeviceType type) {
  if (type == c10::DeviceType::CUDA) return at::Device(type, static_cast<c10::DeviceIndex>(env.local_rank));
  return at::Device(type);
}

c10::intrusive_ptr<c10d::ProcessGroup> new_group(const c10::intrusive_ptr<c10d::Store>& store, const std::string& name,
                                                 int64_t group_rank, int64_t size, const at::Device& device,
                                                 std::chrono::milliseconds timeout) {
  auto group = c10::make_intrusive<c10d::ProcessGroup>(c10::make_intrusive<c10d::PrefixStore>(name, store),
                                                       static_cast<int>(group_rank), static_cast<int>(size));
  try {
    if (device.is_cuda()) {
#ifdef LIGHTHOUSE_WITH_NCCL
      group->setBackend(
          c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL,
          make_nccl(c10::make_intrusive<c10d::PrefixStore>(name + "/nccl", store), group_rank, size, timeout));
      group->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
#else
      LH_CHECK(false,
               "lighthouse dist: this build has no NCCL process group (CUDA tensors); rebuild with torch's "
               "CUDA wheel and nccl.h available (see README, Multi-GPU)");
#endif
    }
#ifdef LIGHTHOUSE_WITH_GLOO
    // CPU tensors: Gloo, also beside NCCL (as torch's "cpu:gloo,cuda:nccl").
    group->setBackend(
        c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO,
        make_gloo(c10::make_intrusive<c10d::PrefixStore>(name + "/gloo", store), group_rank, size, timeout));
    if (!device.is_cuda()) group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
#else
    LH_CHECK(device.is_cuda(),
             "lighthouse dist: this build has no Gloo process group (CPU tensors): install "
             "libgloo-dev (Debian) or carry its headers in .deps/include (scripts/carry-deps.sh) and rebuild");
#endif
  } catch (const std::exception& e) {
    LH_CHECK(false, "lighthouse dist: rank ", group_rank, " of ", size, " could not join group '", name, "' within ",
             static_cast<int64_t>(timeout.count() / 1000),
             " s: another rank has most likely exited or not started. Cause: ", what_of(e));
  }
  group->setGroupName(name);
  c10d::register_process_group(name, group);
  return group;
}

World init(const at::Device& device, const InitOptions& options) {
  World w;
  w.env = read_env();
  w.timeout = options.timeout;
  try {
    w.layout = make_parallel_layout(options.dp, options.cp, w.env.world_size, w.env.rank);
  } catch (const std::invalid_argument& e) {
    LH_CHECK(false, "lighthouse dist: ", e.what());
  }
  if (!w.env.distributed) return w;
  LH_CHECK(device.is_cpu() || device.is_cuda(), "lighthouse dist: process groups for CPU or CUDA tensors, got ",
           device);
#ifdef LIGHTHOUSE_WITH_NCCL
  if (device.is_cuda()) c10::cuda::set_device(device.index() >= 0 ? device.index() : w.env.local_rank);
#endif

  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(w.env.master_port);
  // Under torchrun the agent hosts the store; started by hand, rank 0 does.
  so.isServer = !w.env.agent_store && w.env.rank == 0;
  if (!w.env.agent_store) so.numWorkers = static_cast<size_t>(w.env.world_size);
  so.timeout = options.timeout;
  so.multiTenant = true;
  c10::intrusive_ptr<c10d::Store> tcp;
  try {
    tcp = c10::make_intrusive<c10d::TCPStore>(w.env.master_addr, so);
  } catch (const std::exception& e) {
    LH_CHECK(false, "lighthouse dist: rank ", w.env.rank, " of ", w.env.world_size, " could not ",
             so.isServer ? "host" : "reach", " the store at ", w.env.master_addr, ":", w.env.master_port, " within ",
             static_cast<int64_t>(options.timeout.count() / 1000), " s. Cause: ", what_of(e));
  }
  // Keys of each torchrun restart and each init() apart.
  const char* restart = getenv_or_null("TORCHELASTIC_RESTART_COUNT");
  const std::string prefix =
      "lighthouse/" + std::string(restart != nullptr ? restart : "0") + "." + std::to_string(next_generation());
  w.store = c10::make_intrusive<c10d::PrefixStore>(prefix, tcp);

  const ParallelLayout& lay = w.layout;
  w.world = new_group(w.store, prefix + "/world", w.env.rank, w.env.world_size, device, options.timeout);
  w.cp = new_group(w.store, prefix + "/cp" + std::to_string(lay.dp_rank()), lay.cp_rank(), lay.cp, device,
                   options.timeout);
  w.dp = new_group(w.store, prefix + "/dp" + std::to_string(lay.cp_rank()), lay.dp_rank(), lay.dp, device,
                   options.timeout);
  return w;
}

void wait(const c10::intrusive_ptr<c10d::Work>& work, const c10d::ProcessGroup& group, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    LH_CHECK(false, "lighthouse dist: ", what, " failed on rank ", static_cast<int64_t>(group.getRank()), " of ",
             static_cast<int64_t>(group.getSize()), " (group '", group.getGroupName(), "', ", group.getBackendName(),
             "): another rank has most likely exited, crashed or stalled past the timeout; see its log. Cause: ",
             what_of(e));
  }
}

std::vector<at::Tensor> all_gather(const c10::intrusive_ptr<c10d::ProcessGroup>& group, const at::Tensor& x,
                                   const char* what) {
  std::vector<at::Tensor> in{x.contiguous()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int i = 0; i < group->getSize(); ++i) out[0].push_back(at::empty_like(in[0]));
  wait(group->allgather(out, in), *group, what);
  return out[0];
}

at::Tensor reduce_scatter_sum(const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                              const std::vector<at::Tensor>& inputs, const char* what) {
  TORCH_INTERNAL_ASSERT(static_cast<int>(inputs.size()) == group->getSize());
  std::vector<std::vector<at::Tensor>> in{inputs};
  for (auto& t : in[0]) t = t.contiguous();
  std::vector<at::Tensor> out{at::empty_like(in[0][0])};
  c10d::ReduceScatterOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  wait(group->reduce_scatter(out, in, opts), *group, what);
  return out[0];
}

void all_reduce_sum(const c10::intrusive_ptr<c10d::ProcessGroup>& group, at::Tensor& x, const char* what) {
  LH_CHECK(x.is_contiguous(), "lighthouse dist: all_reduce_sum needs a contiguous tensor (", what, ")");
  std::vector<at::Tensor> t{x};
  wait(group->allreduce(t), *group, what);
}

void barrier(const c10::intrusive_ptr<c10d::ProcessGroup>& group, const char* what) {
  wait(group->barrier(), *group, what);
}

}  // namespace lighthouse::dist
