// Table, number formats, JSON output (report.h).
#include "bench/report.h"

#include <cmath>
#include <ctime>
#include <fstream>
#include <stdexcept>

#ifdef LIGHTHOUSE_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace lighthouse::bench {

Table& Table::group() {
  if (!groups_.back().empty()) groups_.emplace_back();
  return *this;
}

Table& Table::column(std::string title, std::string unit, int width) {
  groups_.back().push_back({std::move(title), std::move(unit), width});
  return *this;
}

size_t Table::columns() const {
  size_t n = 0;
  for (const auto& g : groups_) n += g.size();
  return n;
}

std::string Table::line(const std::vector<std::string>& cells) const {
  if (cells.size() != columns()) {
    throw std::logic_error("bench table: " + std::to_string(cells.size()) + " cells for " +
                           std::to_string(columns()) + " columns");
  }
  std::string out;
  size_t i = 0;
  bool first_group = true;
  for (const auto& g : groups_) {
    if (g.empty()) continue;
    if (!first_group) out += " | ";
    first_group = false;
    for (size_t j = 0; j < g.size(); ++j, ++i) {
      if (j) out += ' ';
      const std::string& cell = cells[i];
      if (static_cast<int>(cell.size()) < g[j].width) out.append(g[j].width - cell.size(), ' ');
      out += cell;
    }
  }
  return out + "\n";
}

std::string Table::header() const {
  std::vector<std::string> titles, units;
  bool any_unit = false;
  for (const auto& g : groups_) {
    for (const auto& c : g) {
      titles.push_back(c.title);
      units.push_back(c.unit);
      any_unit = any_unit || !c.unit.empty();
    }
  }
  return line(titles) + (any_unit ? line(units) : "");
}

std::string Table::row(const std::vector<std::string>& cells) const { return line(cells); }

void Table::print_header(std::FILE* out) const {
  std::fputs(header().c_str(), out);
  std::fflush(out);
}

void Table::print_row(const std::vector<std::string>& cells, std::FILE* out) const {
  std::fputs(row(cells).c_str(), out);
  std::fflush(out);
}

std::string format_ms(double ms) {
  char buf[32];
  if (ms <= 0) return "-";
  std::snprintf(buf, sizeof buf, ms < 10 ? "%.3f" : (ms < 1000 ? "%.2f" : "%.0f"), ms);
  return buf;
}

std::string format_ratio(double r) {
  char buf[32];
  if (!(r > 0) || !std::isfinite(r)) return "-";
  std::snprintf(buf, sizeof buf, "%.2fx", r);
  return buf;
}

std::string utc_timestamp() {
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return date;
}

std::string device_name(const at::Device& device) {
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index())->name;
#endif
  (void)device;
  return "";
}

void write_json(const std::string& path, const Json& doc) {
  std::ofstream out(path);
  out << doc.dump(2) << "\n";
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace lighthouse::bench
