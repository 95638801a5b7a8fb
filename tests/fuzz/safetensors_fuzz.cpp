// libFuzzer target: io::parse_header on arbitrary bytes. It may only return a
// header or throw std::runtime_error (anything else escaping aborts, which
// libFuzzer reports). When it parses, the round trip must hold: serializing
// the header and appending the same data section parses back to the same
// header (at the new data offset).
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lighthouse::io;
  Header h;
  try {
    h = parse_header(data, size);
  } catch (const std::runtime_error&) {
    return 0;
  }
  // Validated: every range lies in the data section.
  const std::string section(reinterpret_cast<const char*>(data) + h.data_offset, size - h.data_offset);
  uint64_t end = 0;
  for (const TensorInfo& t : h.tensors) {
    if (t.begin > t.end || t.end > section.size()) std::abort();
    end = t.end > end ? t.end : end;
  }
  if (end != section.size()) std::abort();
  const std::string file = serialize_header(h) + section;
  Header again = parse_header(reinterpret_cast<const uint8_t*>(file.data()), file.size());
  again.data_offset = h.data_offset;
  if (!(again == h)) std::abort();
  return 0;
}
