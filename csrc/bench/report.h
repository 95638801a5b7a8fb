/*
 * Reporting benchmark results: a fixed-width text table printed a row at a
 * time (so a long benchmark shows each result as it completes), number
 * formats, and the JSON file every benchmark writes.
 *
 * Table layout: columns in groups; within a group columns are separated by
 * one space, groups by " | "; every cell is right-aligned to its column's
 * width. A header has a title line and, when any column has one, a unit
 * line.
 */
#pragma once

#include <c10/core/Device.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lighthouse::bench {

using Json = nlohmann::ordered_json;

struct Column {
  std::string title;
  std::string unit;  // second header line; "" for none
  int width = 9;
};

class Table {
 public:
  // Starts a new group of columns (the first group starts implicitly).
  Table& group();
  Table& column(std::string title, std::string unit, int width);

  // The header lines, each ending in a newline.
  std::string header() const;
  // One row: one cell per column, in order.
  std::string row(const std::vector<std::string>& cells) const;
  // header()/row() to `out`, flushed.
  void print_header(std::FILE* out = stdout) const;
  void print_row(const std::vector<std::string>& cells, std::FILE* out = stdout) const;

  size_t columns() const;

 private:
  std::string line(const std::vector<std::string>& cells) const;
  std::vector<std::vector<Column>> groups_ = {{}};
};

// "0.123", "12.34", "1234" by magnitude; "-" for <= 0.
std::string format_ms(double ms);
// "1.23x"; "-" when not positive or not finite.
std::string format_ratio(double r);

// The current UTC time as "YYYY-MM-DDTHH:MM:SSZ".
std::string utc_timestamp();
// The GPU's name for a CUDA device ("" elsewhere or when unknown).
std::string device_name(const at::Device& device);
// Writes `doc` as JSON, indented by 2, with a final newline; throws
// std::runtime_error naming the path if it cannot.
void write_json(const std::string& path, const Json& doc);

}  // namespace lighthouse::bench
