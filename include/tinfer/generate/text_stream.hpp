// tinfer/generate/text_stream.hpp: generated text, released as soon as it is safe to show.
//
// Generated tokens arrive as bytes. TextStream releases them only as complete UTF-8, and
// holds back any tail that could be the beginning of a stop string: when a stop string then
// appears, nothing from it on has been released (the caller never has to take text back).
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/tokenizer/unicode.hpp"

namespace tinfer {

class TextStream {
 public:
  /// Stop strings must be non-empty.
  explicit TextStream(std::vector<std::string> stop_strings = {}) : stops_(std::move(stop_strings)) {
    for (const auto& s : stops_) {
      if (s.empty()) throw InvalidArgument("a stop string is empty");
      max_stop_ = std::max(max_stop_, s.size());
    }
  }

  /// Adds the bytes of a token; returns the text that is now final (valid UTF-8, possibly
  /// empty). Once a stop string has appeared, returns the text before it and sets stopped();
  /// later calls return nothing.
  std::string push(std::string_view bytes) {
    if (stopped_) return {};
    held_.append(bytes);
    std::size_t at = std::string::npos;
    for (const auto& s : stops_) {
      const std::size_t p = held_.find(s);
      if (p < at) {
        at = p;
        matched_ = s;
      }
    }
    if (at != std::string::npos) {
      stopped_ = true;
      std::string out = unicode::sanitize_utf8(std::string_view(held_).substr(0, at));
      held_.clear();
      return out;
    }
    std::size_t cut = held_.size() - unicode::incomplete_utf8_tail(held_);
    cut = std::min(cut, stop_prefix_start());
    cut -= unicode::incomplete_utf8_tail(std::string_view(held_).substr(0, cut));
    std::string out = unicode::sanitize_utf8(std::string_view(held_).substr(0, cut));
    held_.erase(0, cut);
    return out;
  }

  /// Ends the stream: returns what was held back (an unfinished character becomes U+FFFD),
  /// or nothing after a stop string.
  std::string finish() {
    if (stopped_) return {};
    std::string out = unicode::sanitize_utf8(held_);
    held_.clear();
    return out;
  }

  /// Whether a stop string appeared, and which (the first in the text; for two starting at the
  /// same place, the first given).
  bool stopped() const noexcept { return stopped_; }
  const std::string& matched_stop() const noexcept { return matched_; }
  /// Bytes held back now.
  std::size_t held_bytes() const noexcept { return held_.size(); }

 private:
  // The earliest i such that held_[i..] is a (proper) prefix of some stop string.
  std::size_t stop_prefix_start() const {
    const std::size_t n = held_.size();
    const std::size_t first = n >= max_stop_ ? n - max_stop_ + 1 : 0;
    for (std::size_t i = first; i < n; ++i) {
      const std::string_view tail = std::string_view(held_).substr(i);
      for (const auto& s : stops_)
        if (s.size() > tail.size() && std::string_view(s).substr(0, tail.size()) == tail) return i;
    }
    return n;
  }

  std::vector<std::string> stops_;
  std::size_t max_stop_ = 0;
  std::string held_;
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace tinfer
