/*
 * Loader: windows of seq_len + 1 tokens from one split of a packed dataset,
 * in a seeded per-epoch order (train) or in file order (val), with exact
 * state save/restore (loader.h).
 */
#include "data/loader.h"

#include <ATen/ops/empty.h>

#include <cstring>
#include <numeric>
#include <stdexcept>

#include "data/rng.h"

namespace lighthouse::data {
namespace {

constexpr uint64_t kWindowStream = 2;
constexpr const char* kStateFormat = "lighthouse-loader";
constexpr int kStateVersion = 1;

}  // namespace

std::vector<int64_t> epoch_permutation(int64_t windows, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(windows));
  std::iota(order.begin(), order.end(), int64_t{0});
  SplitMix64 rng(mix_seed(seed, kWindowStream, static_cast<uint64_t>(epoch)));
  shuffle(order, rng);
  return order;
}

Loader::Loader(const std::string& dir, Split split, int64_t batch, int64_t seq_len, uint64_t seed, int64_t rank,
               int64_t world)
    : dir_(dir), split_(split), batch_(batch), seq_len_(seq_len), seed_(seed), rank_(rank), world_(world) {
  if (batch <= 0) throw std::runtime_error("Loader: batch must be positive, got " + std::to_string(batch));
  if (seq_len <= 0) throw std::runtime_error("Loader: seq_len must be positive, got " + std::to_string(seq_len));
  if (world <= 0 || rank < 0 || rank >= world)
    throw std::runtime_error("Loader: rank " + std::to_string(rank) + " of world " + std::to_string(world) +
                             ": need world >= 1 and 0 <= rank < world");
  if (batch % world != 0)
    throw std::runtime_error("Loader: the global batch (" + std::to_string(batch) + " rows) does not split over " +
                             std::to_string(world) + " ranks: make train.batch a multiple of the number of ranks");
  PackedSplit s = read_packed_split(dir, split);
  dataset_id_ = s.dataset_id;
  const uint64_t total = s.tokens();
  if (total < static_cast<uint64_t>(seq_len) + 1)
    throw std::runtime_error("Loader: the " + std::string(split_name(split)) + " split of '" + dir + "' has " +
                             std::to_string(total) + " tokens; one sequence needs seq_len + 1 = " +
                             std::to_string(seq_len + 1) + " tokens (pack more text or use a shorter seq_len)");
  tokens_.reserve(total);
  for (int64_t d = 0; d < s.documents(); ++d) {
    tokens_.push_back(static_cast<uint16_t>(kBos));
    tokens_.insert(tokens_.end(), s.bytes.begin() + static_cast<std::ptrdiff_t>(s.offsets[d]),
                   s.bytes.begin() + static_cast<std::ptrdiff_t>(s.offsets[d + 1]));
    tokens_.push_back(static_cast<uint16_t>(kEos));
  }
  windows_ = static_cast<int64_t>((total - 1) / static_cast<uint64_t>(seq_len));
}

int64_t Loader::window_at(int64_t index) {
  if (split_ == Split::kVal) return index;
  if (order_epoch_ != epoch_) {
    order_ = epoch_permutation(windows_, seed_, epoch_);
    order_epoch_ = epoch_;
  }
  return order_[static_cast<size_t>(index)];
}

void Loader::next_into(int64_t* out) {
  const int64_t row = seq_len_ + 1;
  const int64_t first = rank_ * (batch_ / world_), end = first + batch_ / world_;  // this rank's rows
  for (int64_t b = 0; b < batch_; ++b) {
    if (b >= first && b < end) {
      const uint16_t* src = tokens_.data() + window_at(position_) * seq_len_;
      int64_t* dst = out + (b - first) * row;
      for (int64_t i = 0; i < row; ++i) dst[i] = src[i];
    }
    if (++position_ == windows_) {
      position_ = 0;
      ++epoch_;
    }
  }
}

at::Tensor Loader::next() {
  at::Tensor t = at::empty({batch_ / world_, seq_len_ + 1}, at::TensorOptions().dtype(at::kLong));
  next_into(t.data_ptr<int64_t>());
  return t;
}

void Loader::reset() {
  epoch_ = 0;
  position_ = 0;
}

nlohmann::json Loader::state() const {
  return nlohmann::json{{"format", kStateFormat},
                        {"version", kStateVersion},
                        {"dataset_id", dataset_id_},
                        {"split", split_name(split_)},
                        {"batch", batch_},
                        {"seq_len", seq_len_},
                        {"seed", seed_},
                        {"windows_per_epoch", windows_},
                        {"epoch", epoch_},
                        {"position", position_}};
}

void Loader::load_state(const nlohmann::json& s) {
  const std::string where = "loader state for '" + dir_ + "' (" + split_name(split_) + ")";
  int64_t epoch = 0, position = 0;
  std::string mismatch;
  try {
    if (!s.is_object() || s.value("format", "") != kStateFormat)
      throw std::runtime_error(where + ": not a loader state: " + s.dump().substr(0, 200));
    if (s.at("version").get<int>() != kStateVersion)
      throw std::runtime_error(where + ": state version " + s.at("version").dump() + ", this build reads " +
                               std::to_string(kStateVersion));
    auto check = [&](const char* key, const nlohmann::json& mine) {
      const nlohmann::json& theirs = s.at(key);
      if (theirs != mine)
        mismatch += std::string(mismatch.empty() ? "" : "; ") + key + " is " + theirs.dump() + " in the state, " +
                    mine.dump() + " here";
    };
    check("dataset_id", dataset_id_);
    check("split", split_name(split_));
    check("seq_len", seq_len_);
    check("batch", batch_);
    if (split_ == Split::kTrain) check("seed", seed_);
    if (mismatch.empty()) check("windows_per_epoch", windows_);
    epoch = s.at("epoch").get<int64_t>();
    position = s.at("position").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(where + ": malformed: " + e.what());
  }
  if (!mismatch.empty())
    throw std::runtime_error(
        where + " does not match this loader: " + mismatch +
        (mismatch.find("dataset_id") != std::string::npos ? " (another dataset or a re-pack)" : ""));
  if (epoch < 0 || position < 0 || position >= windows_)
    throw std::runtime_error(where + ": epoch " + std::to_string(epoch) + ", position " + std::to_string(position) +
                             " out of range (" + std::to_string(windows_) + " windows per epoch)");
  epoch_ = epoch;
  position_ = position;
}

}  // namespace lighthouse::data
