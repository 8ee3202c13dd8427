// Command-line parsing shared by the example programs: strict numbers (the whole argument must
// parse and be in range) and errors that name the flag.
#pragma once

#include <charconv>
#include <cstdio>
#include <exception>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace tinfer_examples {

/// Thrown for a bad command line; main() prints it with a pointer to --help and exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  Args(int argc, char** argv) : argc_(argc), argv_(argv) {}

  bool done() const { return i_ >= argc_; }
  /// The next flag (advances).
  std::string_view next_flag() { return argv_[i_++]; }
  /// The value after `flag` (advances).
  std::string_view value(std::string_view flag) {
    if (i_ >= argc_) throw UsageError("option " + std::string(flag) + " needs a value");
    return argv_[i_++];
  }
  template <class T>
  T number(std::string_view flag, T lo, T hi) {
    const std::string_view s = value(flag);
    T v{};
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) {
      throw UsageError("option " + std::string(flag) + ": '" + std::string(s) + "' is not a valid number");
    }
    // Written as !(in range) so NaN ("nan" parses as a float) is refused too.
    if (!(v >= lo && v <= hi)) {
      throw UsageError("option " + std::string(flag) + ": " + std::string(s) + " is outside [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "]");
    }
    return v;
  }

 private:
  int argc_;
  char** argv_;
  int i_ = 1;
};

/// Runs a program body with the exit codes every example uses: 0 on success, 2 for a bad
/// command line (with a pointer to --help), 1 for a failure (the message names the problem).
template <class Body>
int guarded_main(const char* program, Body&& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\nrun '%s --help' for the options\n", program, e.what(), program);
    return 2;
  } catch (const std::exception& e) {  // tinfer::Error and anything else
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace tinfer_examples
