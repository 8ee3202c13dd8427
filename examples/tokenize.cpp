// tinfer-tokenize: prints the token ids of a text, one line, separated by spaces (or, with
// --pieces, each token's text in brackets instead).
//
//   tinfer-tokenize -m PATH (-p TEXT | -f FILE) [--no-bos] [--parse-special] [--pieces]
//
// PATH: a tokenizer.json, a Hugging Face folder (tokenizer.json, vocab.json + merges.txt,
// tokenizer.model, or encoder.json + vocab.bpe), a SentencePiece tokenizer.model, a llama2.c
// tokenizer.bin, encoder.json (with vocab.bpe beside it), or a GGUF model.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "tinfer/tokenizer/load_tokenizer.hpp"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: tinfer-tokenize -m PATH (-p TEXT | -f FILE) [options]\n"
               "\n"
               "Prints the token ids of TEXT (or of FILE's contents) on one line; with --pieces,\n"
               "the tokens' texts instead.\n"
               "\n"
               "  -m, --model PATH     tokenizer.json, a folder (tokenizer.json, vocab.json + merges.txt,\n"
               "                       tokenizer.model, or encoder.json + vocab.bpe), tokenizer.model,\n"
               "                       llama2.c tokenizer.bin, encoder.json (+ vocab.bpe beside it),\n"
               "                       or a GGUF model\n"
               "  -p, --prompt TEXT    text to tokenize\n"
               "  -f, --file FILE      read the text from FILE\n"
               "      --no-bos         do not add the BOS token (default: the tokenizer's own setting)\n"
               "      --parse-special  recognise special tokens written in the text, e.g. <s>, <|endoftext|>\n"
               "      --pieces         print each token's text, as [piece], instead of the ids\n"
               "  -h, --help           show this help\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string model;
  std::string text;
  bool have_text = false;
  bool no_bos = false;
  bool parse_special = false;
  bool pieces = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tinfer-tokenize: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (a == "-m" || a == "--model") {
      model = value();
    } else if (a == "-p" || a == "--prompt") {
      text = value();
      have_text = true;
    } else if (a == "-f" || a == "--file") {
      const char* path = value();
      std::error_code ec;
      if (std::filesystem::is_directory(path, ec)) {  // opens fine but reads as empty text
        std::fprintf(stderr, "tinfer-tokenize: cannot read %s: it is a folder, not a text file\n", path);
        return 1;
      }
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "tinfer-tokenize: cannot open %s: %s\n", path, std::strerror(errno));
        return 1;
      }
      std::ostringstream s;
      s << in.rdbuf();
      text = s.str();
      have_text = true;
    } else if (a == "--no-bos") {
      no_bos = true;
    } else if (a == "--parse-special") {
      parse_special = true;
    } else if (a == "--pieces") {
      pieces = true;
    } else {
      std::fprintf(stderr, "tinfer-tokenize: unknown argument '%s' (see --help)\n", a.c_str());
      return 2;
    }
  }
  if (model.empty() || !have_text) {
    std::fprintf(stderr, "tinfer-tokenize: need -m PATH and one of -p TEXT or -f FILE (see --help)\n");
    return 2;
  }
  try {
    const auto tok = tinfer::load_tokenizer(model);
    tinfer::EncodeOptions opts;
    if (no_bos) opts.add_bos = false;
    opts.parse_special = parse_special;
    const auto ids = tok->encode(text, opts);
    std::string line;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (i) line += ' ';
      line += pieces ? tinfer::detail::str_cat('[', tok->token_to_piece(ids[i]), ']') : std::to_string(ids[i]);
    }
    std::cout << line << '\n';
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tinfer-tokenize: %s\n", e.what());
    return 1;
  }
  return 0;
}
