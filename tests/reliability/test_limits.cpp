// Limits: prompts longer than the context, contexts larger than the model supports, absurd
// -n/-c/-t values, and memory requests larger than the machine has. Each must end with a clear
// error (programs: exit code 2 for a bad command line, 1 for a failure, and a message naming
// the problem), never a crash or a silently wrong answer.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "program_runner.hpp"
#include "test_assets.hpp"
#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/generate/generate.hpp"
#include "tinfer/generate/sampler.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/io/gguf_writer.hpp"
#include "tinfer/models/model.hpp"

namespace {

using tinfer::testing::run_program;
using tinfer::testing::shell_quote;

const std::filesystem::path kSource(TINFER_SOURCE_DIR);
const std::string kDemo = (kSource / "examples" / "demo-model" / "tinfer-demo-kjv.gguf").string();

struct Expect {
  std::string args;
  int code;
  std::string message;  // a part of the merged output
};

void expect_runs(const std::string& program, const std::vector<Expect>& cases) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  for (const auto& c : cases) {
    const auto r = run_program(program, c.args, /*merge_stderr=*/true);
    EXPECT_EQ(r.exit_code, c.code) << program << " " << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << program << " " << c.args << "\nexpected: " << c.message << "\ngot: " << r.out;
    EXPECT_EQ(r.out.find("Sanitizer"), std::string::npos) << r.out;
  }
}

std::string write_temp(const std::string& name, const std::string& text) {
  const auto p = tinfer::testing::temp_path(name);
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

TEST(Limits, GenerateRefusesAbsurdNumbers) {
  const std::string m = "-m " + shell_quote(kDemo) + " ";
  expect_runs("tinfer-generate", {
      // A folder as the prompt file must not run as an empty prompt.
      {m + "-f " + shell_quote(std::filesystem::temp_directory_path().string()), 1, "is a folder"},
      {m + "-n 99999999999", 2, "is not a valid number"},  // beyond int
      {m + "-n 100000000", 2, "outside [-1, 16777216]"},
      {m + "-n -2", 2, "outside [-1, 16777216]"},
      {m + "-c -5", 2, "outside [0, 16777216]"},
      {m + "-c 99999999", 2, "outside [0, 16777216]"},
      {m + "-t 100000", 2, "outside [1, 1024]"},
      {m + "-t 0", 2, "outside [1, 1024]"},
      {m + "-t 1e3", 2, "not a valid number"},
      {m + "-s 0", 2, "the seed must be > 0"},
      {m + "--temp nan", 2, "not a finite number"},
      {m + "--temp inf", 2, "not a finite number"},
      {m + "--top-p nan", 2, "not a finite number"},
      {m + "--top-p 1.5", 2, "outside [0, 1]"},
      {m + "-n", 2, "needs a value"},
  });
}

TEST(Limits, GenerateContextBeyondModel) {
  const std::string m = "-m " + shell_quote(kDemo) + " ";
  expect_runs("tinfer-generate", {
      // The model's maximum is far below 16M positions: refused before any work, no allocation.
      {m + "-c 16777216 -n 1", 1, "context size 16777216 exceeds the model's"},
      {m + "-c 4 -n 1 -p " + shell_quote(std::string(200, 'a') + " and the LORD spake"), 1, "use a larger context (-c)"},
  });
}

TEST(Limits, GenerateManyTokensStopsAtFullContext) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  // -n far beyond the context without context shift: generation ends when the context is full,
  // and says so. (With context shift, the default, it would go on for all 16M tokens.)
  const auto r = run_program("tinfer-generate",
                             "-m " + shell_quote(kDemo) + " -c 12 -n 16777216 -s 3 -t 2 --no-context-shift -p 'In the'", true);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("context of 12 tokens is full"), std::string::npos) << r.out;
}

TEST(Limits, PerplexityRefusesAbsurdNumbers) {
  const std::string text = write_temp("text.txt", "In the beginning God created the heaven and the earth. And the earth was without form.\n");
  const std::string m = "-m " + shell_quote(kDemo) + " -f " + shell_quote(text) + " ";
  expect_runs("tinfer-perplexity", {
      {m + "-c 100000", 1, "exceeds the model's maximum"},
      {m + "-c 1", 2, "outside [2, 16777216]"},
      {m + "-c 999999999999", 2, "not a valid number"},
      {m + "-t 100000", 2, "outside [1, 1024]"},
      {m + "--chunks 0", 2, "outside [1, "},
      {m + "-c 64", 1, "fewer than one chunk"},
  });
}

TEST(Limits, TokenizeRefusesBadInput) {
  const std::string dir = tinfer::testing::temp_path("dir").string();
  std::filesystem::create_directories(dir);
  expect_runs("tinfer-tokenize", {
      {"-m " + shell_quote(kDemo) + " -f /nonexistent/file.txt", 1, "cannot open"},
      // A folder is not a text file (reading it fails; it must not tokenize as empty text).
      {"-m " + shell_quote(kDemo) + " -f " + shell_quote(dir), 1, "cannot read"},
      {"-m " + shell_quote(kDemo), 2, "need -m PATH and one of -p TEXT or -f FILE"},
      {"-m /nonexistent.gguf -p hi", 1, "/nonexistent.gguf"},
      {"-m " + shell_quote(kDemo) + " -p", 2, "needs a value"},
  });
  std::filesystem::remove_all(dir);
}

TEST(Limits, ConvertRefusesBadInput) {
  expect_runs("tinfer-convert", {
      {"--outtype q4_0 a b", 2, "--outtype must be f32, f16 or bf16"},
      {"a", 2, "expected HF_FOLDER and OUTPUT.gguf"},
      {"a b c", 2, "expected HF_FOLDER and OUTPUT.gguf"},
      {"/nonexistent/folder out.gguf", 1, "/nonexistent/folder"},
  });
}

// Memory: requests beyond what the machine can give fail up front with OutOfMemory naming the
// size (checked against the available memory before anything is allocated or touched).
TEST(Limits, HugeAllocationsThrowOutOfMemory) {
  try {
    tinfer::AlignedBuffer<float> b(std::size_t{1} << 50);  // 4 PiB
    FAIL() << "allocated 4 PiB";
  } catch (const tinfer::OutOfMemory& e) {
    EXPECT_NE(std::string(e.what()).find("GiB"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tinfer::AlignedBuffer<float>(~std::size_t{0} / 2), tinfer::OutOfMemory);  // size overflows
  try {
    tinfer::KVCache kv(4096, 1 << 24, 8, 128);  // 4 TiB of keys and values
    FAIL() << "allocated a 4 TiB KV cache";
  } catch (const tinfer::OutOfMemory& e) {
    EXPECT_NE(std::string(e.what()).find("KV cache for a context of 16777216 positions"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("use a smaller context"), std::string::npos) << e.what();
  }
}

// A GGUF model whose metadata claims the largest context tinfer accepts (2^24 positions) and
// 2048 layers: loading works (the weights are small), a default session (the full context)
// would need ~1 TiB of KV cache and must throw OutOfMemory at creation, and a session with an
// explicit small context still works.
TEST(Limits, ModelClaimingHugeContextThrowsAtSessionCreation) {
  const tinfer::io::GgufFile seed((kSource / "tests" / "fuzz" / "corpus" / "gguf" / "tiny-llama.gguf").string());
  tinfer::io::GgufWriter w;
  constexpr int kLayers = 2048;
  for (const auto& [k, v] : seed.metadata()) {
    if (k == "llama.context_length") w.set(k, std::uint32_t{1u << 24});
    else if (k == "llama.block_count") w.set(k, std::uint32_t{kLayers});
    else if (k != "general.alignment") w.set(k, v);
  }
  for (const auto& t : seed.tensors()) {
    if (t.name.rfind("blk.0.", 0) == 0) {
      for (int l = 0; l < kLayers; ++l)
        w.add_tensor_view("blk." + std::to_string(l) + t.name.substr(5), t.dims, t.type, seed.tensor_data(t));
    } else {
      w.add_tensor_view(t.name, t.dims, t.type, seed.tensor_data(t));
    }
  }
  const auto path = tinfer::testing::temp_path("huge-context.gguf");
  w.write(path);
  const auto model = tinfer::load_model(path.string());
  EXPECT_EQ(model->max_context(), 1 << 24);
  try {
    (void)model->new_session();
    FAIL() << "a session of 2^24 positions x 2048 layers was allocated";
  } catch (const tinfer::OutOfMemory& e) {
    EXPECT_NE(std::string(e.what()).find("use a smaller context"), std::string::npos) << e.what();
  }
  auto s = model->new_session(8);
  EXPECT_EQ(model->forward(*s, 1, 0).size(), 8u);
  EXPECT_THROW((void)model->forward(*s, 1, 8), tinfer::InvalidArgument);  // past the session's context
  std::filesystem::remove(path);
}

// The library API: a prompt longer than the session, a context beyond the model's, absurd
// thread counts.
TEST(Limits, LibraryRefusesOutOfRangeRequests) {
  const auto model = tinfer::load_model(kDemo);
  EXPECT_THROW((void)model->new_session(model->max_context() + 1), tinfer::InvalidArgument);
  EXPECT_THROW((void)model->new_session(-1), tinfer::InvalidArgument);
  auto s = model->new_session(4);
  tinfer::TopPSampler sampler({.temperature = 0.0f});
  const std::vector<std::int32_t> prompt(5, 1);
  try {
    (void)tinfer::generate(*model, *s, prompt, sampler, {.max_new_tokens = 1}, [](std::int32_t, std::int32_t) { return true; });
    FAIL() << "a 5-token prompt ran in a 4-token context";
  } catch (const tinfer::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("the prompt is 5 tokens but the context holds 4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tinfer::ThreadPool(100000), tinfer::InvalidArgument);
  EXPECT_THROW(tinfer::ThreadPool(-1), tinfer::InvalidArgument);
  EXPECT_THROW((void)model->forward(*s, model->vocab_size(), 0), tinfer::InvalidArgument);  // token id out of range
  EXPECT_THROW((void)model->forward(*s, -1, 0), tinfer::InvalidArgument);
}

}  // namespace
