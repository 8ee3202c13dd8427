// tinfer/generate/token_text_decoder.hpp: a tokenizer as the text decoder generate_text() takes.
#pragma once

#include <cstdint>
#include <string>

#include "tinfer/tokenizer/tokenizer.hpp"

namespace tinfer {

/// push(prev, token) returns the bytes of a token as Tokenizer::decode() would produce them
/// within a text (possibly part of a UTF-8 character: generate_text() holds those back);
/// finish() returns nothing. With at_start false the text continues one already shown (e.g. the
/// prompt), so a SentencePiece tokenizer keeps the first piece's leading space.
class TokenTextDecoder {
 public:
  explicit TokenTextDecoder(const Tokenizer& tok, bool at_start = true, DecodeOptions opts = {})
      : tok_(&tok), opts_(opts), at_start_(at_start) {}
  std::string push(std::int32_t /*prev*/, std::int32_t token) {
    std::string out;
    tok_->append_decoded(token, opts_, at_start_, out);
    return out;
  }
  std::string finish() { return {}; }

 private:
  const Tokenizer* tok_;
  DecodeOptions opts_;
  bool at_start_;
};

}  // namespace tinfer
