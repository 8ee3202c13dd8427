// Test helper: how decisive an exact reference's choice is at one position.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace tinfer::testing {

/// (largest - second largest) of the exact logits `e`, in units of their standard deviation: the
/// argmax comparisons only count positions where this exceeds a test's threshold.
inline double top_two_margin_over_std(const std::vector<double>& e) {
  std::vector<double> sorted = e;
  std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
  double mean = 0, var = 0;
  for (double v : e) mean += v;
  mean /= static_cast<double>(e.size());
  for (double v : e) var += (v - mean) * (v - mean);
  return (sorted[0] - sorted[1]) / std::sqrt(var / static_cast<double>(e.size()));
}

}  // namespace tinfer::testing
