// tinfer/tokenizer/sentencepiece_model.hpp: loads a SentencePiece `tokenizer.model`.
//
// The file is a serialized protobuf ModelProto. Rather than depend on protobuf, this reads the
// wire format directly and picks out the few fields a BPE tokenizer needs:
//   ModelProto      1: repeated SentencePiece pieces, 2: TrainerSpec, 3: NormalizerSpec
//   SentencePiece   1: piece (string), 2: score (float), 3: type (enum, default NORMAL)
//   TrainerSpec     3: model_type (1 unigram, 2 BPE, 3 word, 4 char), 40/41/42: unk/bos/eos id,
//                   44: unk_surface
//   NormalizerSpec  1: name, 3: add_dummy_prefix, 4: remove_extra_whitespaces
// Unknown fields are skipped by wire type; every length is checked against the bytes left.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/core/mapped_file.hpp"
#include "tinfer/io/byte_reader.hpp"
#include "tinfer/tokenizer/sentencepiece_bpe.hpp"

namespace tinfer {

namespace detail {

/// A minimal protobuf wire-format reader over a ByteReader (which bounds-checks every read).
class ProtoReader {
 public:
  explicit ProtoReader(io::ByteReader& r) : r_(r) {}

  std::uint64_t varint(std::string_view field) {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      const auto b = static_cast<std::uint8_t>(r_.read<std::uint8_t>(field));
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
      if (shift == 63) break;
    }
    r_.fail(detail::str_cat("malformed varint in ", field));
  }

  /// Reads a tag; returns false at the end of the range `end`.
  bool next(std::size_t end, std::uint32_t& field, std::uint32_t& wire) {
    if (r_.offset() >= end) return false;
    const std::uint64_t tag = varint("field tag");
    field = static_cast<std::uint32_t>(tag >> 3);
    wire = static_cast<std::uint32_t>(tag & 7);
    if (field == 0) r_.fail("invalid protobuf field number 0");
    return true;
  }

  /// Reads a length prefix and returns the end offset of the delimited range, which must lie
  /// within `end`.
  std::size_t length_delimited(std::size_t end, std::string_view field) {
    const std::uint64_t n = varint(field);
    if (n > end - r_.offset())
      r_.fail(detail::str_cat(field, " claims ", n, " bytes but only ", end - r_.offset(), " remain"));
    return r_.offset() + static_cast<std::size_t>(n);
  }

  void skip(std::uint32_t wire, std::size_t end, std::string_view field) {
    switch (wire) {
      case 0: varint(field); break;
      case 1: r_.skip(8, field); break;
      case 2: r_.seek(length_delimited(end, field), field); break;
      case 5: r_.skip(4, field); break;
      default: r_.fail(detail::str_cat("unsupported protobuf wire type ", wire, " in ", field));
    }
  }

  void expect(std::uint32_t wire, std::uint32_t want, std::string_view field) {
    if (wire != want) r_.fail(detail::str_cat(field, " has wire type ", wire, ", expected ", want));
  }

  io::ByteReader& reader() { return r_; }

 private:
  io::ByteReader& r_;
};

}  // namespace detail

/// Parses a SentencePiece ModelProto held in memory; `file` names it in error messages.
/// Throws FormatError for malformed data and UnsupportedError for non-BPE models (unigram
/// models need a different algorithm) and for normalization rules other than identity.
inline SentencePieceBpeTokenizer parse_sentencepiece_model(std::span<const std::byte> bytes, const std::string& file) {
  io::ByteReader r(bytes, file);
  detail::ProtoReader p(r);
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<TokenType> types;
  SpecialIds ids{.bos = 1, .eos = 2, .unk = 0, .add_bos = true};  // TrainerSpec defaults
  SentencePieceOptions opts{.add_dummy_prefix = true, .remove_extra_whitespaces = true, .unk_surface = " \xE2\x81\x87 "};  // NormalizerSpec defaults
  std::int64_t model_type = 1;            // TrainerSpec default: UNIGRAM
  std::string normalizer = "";
  std::uint32_t field = 0;
  std::uint32_t wire = 0;
  const std::size_t end = bytes.size();
  auto as_id = [&](std::uint64_t v) {
    // int32 fields are sign-extended to 64 bits on the wire (-1 = "none").
    const auto s = static_cast<std::int64_t>(v);
    if (s < -1 || s > (1 << 26)) r.fail(detail::str_cat("special token id ", s, " is out of range"));
    return static_cast<std::int32_t>(s);
  };
  while (p.next(end, field, wire)) {
    if (field == 1) {  // SentencePiece
      p.expect(wire, 2, "ModelProto.pieces");
      const std::size_t pend = p.length_delimited(end, "ModelProto.pieces");
      std::string piece;
      float score = 0;
      std::uint64_t type = 1;
      while (p.next(pend, field, wire)) {
        if (field == 1) {
          p.expect(wire, 2, "SentencePiece.piece");
          const std::size_t send = p.length_delimited(pend, "SentencePiece.piece");
          piece = r.read_string(send - r.offset(), "SentencePiece.piece");
        } else if (field == 2) {
          p.expect(wire, 5, "SentencePiece.score");
          score = r.read<float>("SentencePiece.score");
        } else if (field == 3) {
          p.expect(wire, 0, "SentencePiece.type");
          type = p.varint("SentencePiece.type");
          if (type < 1 || type > 6) r.fail(detail::str_cat("piece ", pieces.size(), " has unknown type ", type));
        } else {
          p.skip(wire, pend, "SentencePiece");
        }
      }
      if (r.offset() != pend) r.fail("SentencePiece message overruns its length");
      pieces.push_back(std::move(piece));
      scores.push_back(score);
      types.push_back(static_cast<TokenType>(type));
    } else if (field == 2 || field == 3) {  // TrainerSpec, NormalizerSpec
      const bool trainer = field == 2;
      const char* name = trainer ? "ModelProto.trainer_spec" : "ModelProto.normalizer_spec";
      p.expect(wire, 2, name);
      const std::size_t mend = p.length_delimited(end, name);
      while (p.next(mend, field, wire)) {
        if (trainer && field == 3 && wire == 0) model_type = static_cast<std::int64_t>(p.varint("TrainerSpec.model_type"));
        else if (trainer && field == 40 && wire == 0) ids.unk = as_id(p.varint("TrainerSpec.unk_id"));
        else if (trainer && field == 41 && wire == 0) ids.bos = as_id(p.varint("TrainerSpec.bos_id"));
        else if (trainer && field == 42 && wire == 0) ids.eos = as_id(p.varint("TrainerSpec.eos_id"));
        else if (trainer && field == 44 && wire == 2)
          opts.unk_surface =
              r.read_string(p.length_delimited(mend, "TrainerSpec.unk_surface") - r.offset(), "TrainerSpec.unk_surface");
        else if (!trainer && field == 1 && wire == 2)
          normalizer = r.read_string(p.length_delimited(mend, "NormalizerSpec.name") - r.offset(), "NormalizerSpec.name");
        else if (!trainer && field == 3 && wire == 0) opts.add_dummy_prefix = p.varint("NormalizerSpec.add_dummy_prefix") != 0;
        else if (!trainer && field == 4 && wire == 0)
          opts.remove_extra_whitespaces = p.varint("NormalizerSpec.remove_extra_whitespaces") != 0;
        else p.skip(wire, mend, name);
      }
      if (r.offset() != mend) r.fail(detail::str_cat(name, " overruns its length"));
    } else {
      p.skip(wire, end, "ModelProto");
    }
  }
  if (pieces.empty()) throw FormatError(file, "no pieces (ModelProto field 1): not a SentencePiece model");
  if (model_type != 2)
    throw UnsupportedError(detail::str_cat(file, ": SentencePiece model_type ", model_type,
                                           " is not BPE (2); only BPE models are supported"));
  if (!normalizer.empty() && normalizer != "identity")
    throw UnsupportedError(detail::str_cat(file, ": normalization rule \"", normalizer,
                                           "\" is not supported (only \"identity\")"));
  const auto n = static_cast<std::int32_t>(pieces.size());
  for (std::int32_t* id : {&ids.unk, &ids.bos, &ids.eos})
    if (*id >= n) *id = -1;  // e.g. a vocabulary without </s>
  return SentencePieceBpeTokenizer(std::move(pieces), std::move(scores), std::move(types), ids, opts, file);
}

/// Loads a SentencePiece `tokenizer.model` file (see parse_sentencepiece_model).
inline SentencePieceBpeTokenizer load_sentencepiece_model(const std::filesystem::path& path) {
  MappedFile f(path.string());
  return parse_sentencepiece_model(f.bytes(), path.string());
}

}  // namespace tinfer
