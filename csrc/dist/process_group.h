/*
 * Process groups from torchrun's environment, on torch.distributed's C++
 * engine (c10d): a TCPStore and a ProcessGroup with the NCCL backend for
 * CUDA tensors and the Gloo backend for CPU tensors (shared/PARALLEL.md).
 *
 * Invariants:
 *   - Without torchrun's variables the program is one process: no store, no
 *     groups (World::distributed() is false), exactly as before.
 *   - Ranks are laid out cp-fastest (parallel.h); each rank builds the world
 *     group, its CP group and its DP group (each over its own store prefix).
 *   - Every group has one timeout (store, rendezvous and collectives): a dead
 *     or stuck rank makes the others fail with a message naming the
 *     operation, rank and timeout instead of hanging (wait() below).
 */
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <vector>

#include "parallel.h"

namespace lighthouse::dist {

// What torchrun told this process (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT; TORCHELASTIC_USE_AGENT_STORE=True when torchrun's
// agent already hosts the store).
struct Env {
  bool distributed = false;  // false: none of the variables is set
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  std::string master_addr;
  int64_t master_port = 0;
  bool agent_store = false;
};

// Reads the environment. Throws c10::Error naming the variable when some but
// not all are set, or one is malformed.
Env read_env();

struct InitOptions {
  int64_t dp = 1;
  int64_t cp = 1;
  // Store connection, rendezvous and every collective.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

// This process's place in the job and its groups.
struct World {
  Env env;
  ParallelLayout layout;
  c10::intrusive_ptr<c10d::Store> store;         // null in one process
  c10::intrusive_ptr<c10d::ProcessGroup> world;  // all ranks; null in one process
  c10::intrusive_ptr<c10d::ProcessGroup> cp;     // this rank's CP group; null in one process
  c10::intrusive_ptr<c10d::ProcessGroup> dp;     // this rank's DP group; null in one process
  std::chrono::milliseconds timeout{0};

  bool distributed() const { return env.distributed; }
  int64_t rank() const { return env.rank; }
  int64_t world_size() const { return env.world_size; }
  bool is_main() const { return env.rank == 0; }
};

// Connects to the store and builds the groups for tensors on `device`
// (CUDA: NCCL, plus Gloo for CPU tensors when built with Gloo; CPU: Gloo).
// In one process returns a World with layout dp = cp = 1 (and an error if
// the options ask for more). Throws c10::Error with a clear message on any
// failure (bad layout, store unreachable, a rank missing at rendezvous).
World init(const at::Device& device, const InitOptions& options);

// The device this rank should use for `type`: cuda:LOCAL_RANK for CUDA.
at::Device local_device(const Env& env, c10::DeviceType type);

// A new group of `size` ranks (this one being `group_rank`) over the store
// prefix `name`, with the backends for `device` as in init(). Every member
// must call it with the same name. Registered under `name` for
// c10d::resolve_process_group (and so for torch.ops.lighthouse.cp_*).
c10::intrusive_ptr<c10d::ProcessGroup> new_group(const c10::intrusive_ptr<c10d::Store>& store, const std::string& name,
                                                 int64_t group_rank, int64_t size, const at::Device& device,
                                                 std::chrono::milliseconds timeout);

// Whether this build can make groups for CPU (Gloo) and CUDA (NCCL) tensors.
bool has_gloo();
bool has_nccl();

// Waits for `work`; on failure throws c10::Error saying which operation
// failed on which rank of which group, that another rank has most likely
// died or stalled, and the original error.
void wait(const c10::intrusive_ptr<c10d::Work>& work, const c10d::ProcessGroup& group, const char* what);

// Collectives used by the CP ops and the trainer, with wait() semantics.
// all_gather: one tensor per rank, shaped like x (made contiguous).
std::vector<at::Tensor> all_gather(const c10::intrusive_ptr<c10d::ProcessGroup>& group, const at::Tensor& x,
                                   const char* what);
// reduce_scatter_sum: inputs[j] (one per rank, equal shapes, contiguous) are
// summed over ranks; rank j receives the sum of everyone's inputs[j].
at::Tensor reduce_scatter_sum(const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                              const std::vector<at::Tensor>& inputs, const char* what);
// all_reduce_sum: in place.
void all_reduce_sum(const c10::intrusive_ptr<c10d::ProcessGroup>& group, at::Tensor& x, const char* what);
void barrier(const c10::intrusive_ptr<c10d::ProcessGroup>& group, const char* what);

}  // namespace lighthouse::dist
