// The small packed corpus that the trainer and evaluation tests read
// (LIGHTHOUSE_TEST_DATA_DIR). The ctest fixture `train_data` packs it; a
// test binary run on its own packs it here first: 4 MB of the default
// corpus, 2% of the documents held out.
#pragma once

#include <string>

#include "data/pack.h"
#include "io/files.h"

namespace lighthouse::testing {

inline std::string ensure_test_pack(const std::string& dir) {
  if (!io::path_exists(dir + "/manifest.json")) {
    data::PackOptions p;
    p.inputs = {data::default_corpus_dir()};
    p.out_dir = dir;
    p.max_bytes = 4000000;
    p.val_fraction = 0.02;
    data::pack(p);
  }
  return dir;
}

}  // namespace lighthouse::testing
