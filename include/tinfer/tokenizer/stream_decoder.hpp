// tinfer/tokenizer/stream_decoder.hpp: incremental decoding for printing tokens as they come.
//
// A character may be split across several byte tokens (<0xF0> <0x9F> <0xA6> <0x99> in
// SentencePiece, or parts of one in byte-level BPE), so printing each token's bytes at once
// would print broken characters. StreamDecoder holds back an incomplete UTF-8 sequence at the
// end until the rest arrives, and returns only valid UTF-8: bytes that can never form a
// character are replaced with U+FFFD.
#pragma once

#include <cstdint>
#include <string>

#include "tinfer/tokenizer/tokenizer.hpp"
#include "tinfer/tokenizer/unicode.hpp"

namespace tinfer {

class StreamDecoder {
 public:
  /// `tok` must outlive the decoder. `opts` as for Tokenizer::decode.
  explicit StreamDecoder(const Tokenizer& tok, DecodeOptions opts = {}) : tok_(&tok), opts_(opts) {}

  /// Adds one token; returns the text that is now complete (possibly empty). Throws
  /// InvalidArgument for an id outside the vocabulary.
  std::string push(std::int32_t id) {
    tok_->append_decoded(id, opts_, at_start_, pending_);
    const std::size_t keep = unicode::incomplete_utf8_tail(pending_);
    std::string out = unicode::sanitize_utf8(std::string_view(pending_).substr(0, pending_.size() - keep));
    pending_.erase(0, pending_.size() - keep);
    return out;
  }

  /// Ends the stream: returns whatever is held back (an unfinished sequence becomes U+FFFD)
  /// and resets the decoder for a new sequence.
  std::string finish() {
    std::string out = unicode::sanitize_utf8(pending_);
    pending_.clear();
    at_start_ = true;
    return out;
  }

  /// Bytes currently held back (at most 3).
  std::size_t pending_bytes() const noexcept { return pending_.size(); }

 private:
  const Tokenizer* tok_;
  DecodeOptions opts_;
  std::string pending_;
  bool at_start_ = true;
};

}  // namespace tinfer
