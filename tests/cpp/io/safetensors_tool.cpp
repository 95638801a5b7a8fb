// Helper for tests/python/test_data_safetensors.py (interop with the
// reference `safetensors` package):
//   lighthouse_safetensors_tool resave IN OUT   load IN with our reader, save it with our writer
// Prints one line per tensor: name dtype shape. Exit 1 with the error on failure.
#include <cstdio>
#include <exception>
#include <map>
#include <string>

#include "io/safetensors_torch.h"

int main(int argc, char** argv) {
  if (argc != 4 || std::string(argv[1]) != "resave") {
    std::fprintf(stderr, "usage: %s resave IN OUT\n", argv[0]);
    return 2;
  }
  try {
    std::map<std::string, std::string> meta;
    auto tensors = lighthouse::io::load_safetensors(argv[2], &meta);
    for (const auto& [name, t] : tensors) {
      std::printf("%s %s [", name.c_str(), c10::toString(t.scalar_type()));
      for (int64_t i = 0; i < t.dim(); ++i) std::printf(i ? ", %lld" : "%lld", static_cast<long long>(t.size(i)));
      std::printf("]\n");
    }
    lighthouse::io::save_safetensors(argv[3], tensors, meta);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
