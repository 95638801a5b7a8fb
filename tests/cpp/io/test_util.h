// Helpers shared by the io and data tests: a temporary directory removed at
// the end of the test, and "the message of the error `fn` throws".
// No std::filesystem: libtorch.so's exported copy of it crashes (io/files.h).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <stdexcept>
#include <string>

#include "io/files.h"

namespace lighthouse::testing {

class TempDir {
 public:
  TempDir() : path_(io::make_temp_dir("lighthouse-test")) {}
  ~TempDir() {
    try {
      io::remove_tree(path_);
    } catch (const std::exception&) {
    }
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  io::make_dirs(path.substr(0, path.find_last_of('/')));
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The message of the std::runtime_error (or subclass) `fn` throws; "<no error>" if none.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace lighthouse::testing

#define EXPECT_ERROR_HAS(expr, needle)                                               \
  do {                                                                               \
    const std::string msg_ = ::lighthouse::testing::error_of([&] { (void)(expr); }); \
    EXPECT_NE(msg_.find(needle), std::string::npos) << "message: " << msg_;          \
  } while (0)
