// Running the example programs from tests: exit code and captured output.
#pragma once

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace tinfer::testing {

struct RunResult {
  int exit_code;
  std::string out;  // stdout, or stdout+stderr when merged
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

/// Runs build/examples/<program> with `args` (already quoted as needed).
inline RunResult run_program(const std::string& program, const std::string& args, bool merge_stderr = false) {
  const std::string exe = std::string(TINFER_EXAMPLES_DIR) + "/" + program;
  const std::string cmd = shell_quote(exe) + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf;
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

inline bool examples_built() { return !std::string(TINFER_EXAMPLES_DIR).empty(); }

}  // namespace tinfer::testing
