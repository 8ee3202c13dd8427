// tinfer/tokenizer/hf_tokenizer_json.hpp: loads a Hugging Face `tokenizer.json`.
//
// Two layouts of the "BPE" model are understood:
// - byte-level BPE (GPT-2 family): a ByteLevel pre-tokenizer or decoder, GPT-2's regex;
// - SentencePiece-style BPE (Llama family): spaces as '▁' (Prepend/Replace normalizers or a
//   Metaspace pre-tokenizer), usually with `byte_fallback`.
// Added tokens become control tokens (`"special": true`) or user-defined tokens. BOS is
// added by default when the post-processor's template starts with a special token. For the
// SentencePiece layout the merge list is turned into scores (earlier merge = higher score), so
// a pair is merged when its concatenation is a piece; this equals HF's rank-ordered merging for
// vocabularies converted from SentencePiece, where every piece has its merges listed.
#pragma once

#include <filesystem>
#include <initializer_list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "tinfer/core/error.hpp"
#include "tinfer/tokenizer/byte_level_bpe.hpp"
#include "tinfer/tokenizer/sentencepiece_bpe.hpp"
#include "tinfer/tokenizer/tokenizer.hpp"

namespace tinfer {

namespace detail {

/// True if `j` or any nested object has "type": `type`.
inline bool json_has_type(const nlohmann::json& j, std::string_view type) {
  if (j.is_object()) {
    if (auto it = j.find("type"); it != j.end() && it->is_string() && it->get<std::string>() == type) return true;
    for (const auto& [k, v] : j.items())
      if (json_has_type(v, type)) return true;
  } else if (j.is_array()) {
    for (const auto& v : j)
      if (json_has_type(v, type)) return true;
  }
  return false;
}

inline const nlohmann::json& json_field(const nlohmann::json& j, const char* key, const std::string& file, const char* where) {
  if (!j.is_object() || !j.contains(key)) throw FormatError(file, detail::str_cat("missing field \"", key, "\" in ", where));
  return j.at(key);
}

/// Merges as "left right" strings; accepts both layouts ("a b" and ["a", "b"]).
inline std::vector<std::string> hf_merges(const nlohmann::json& model, const std::string& file) {
  const auto& merges = json_field(model, "merges", file, "model");
  if (!merges.is_array()) throw FormatError(file, "model.merges must be an array");
  std::vector<std::string> out;
  out.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const auto& m = merges[i];
    if (m.is_string()) out.push_back(m.get<std::string>());
    else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
      out.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    else throw FormatError(file, detail::str_cat("model.merges[", i, "] is neither \"a b\" nor [\"a\", \"b\"]"));
  }
  return out;
}

/// Applies `added_tokens` to the vocabulary (growing it when an id lies beyond).
inline void hf_added_tokens(const nlohmann::json& root, const std::string& file, std::vector<std::string>& tokens,
                            std::vector<TokenType>& types) {
  auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return;
  if (!it->is_array()) throw FormatError(file, "added_tokens must be an array");
  for (std::size_t i = 0; i < it->size(); ++i) {
    const auto& t = (*it)[i];
    const std::string where = detail::str_cat("added_tokens[", i, "]");
    const auto& id = json_field(t, "id", file, where.c_str());
    const auto& content = json_field(t, "content", file, where.c_str());
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() >= (1 << 26) || !content.is_string())
      throw FormatError(file, where + ": needs an integer id >= 0 and a string content");
    const auto k = static_cast<std::size_t>(id.get<std::int64_t>());
    if (k >= tokens.size() + it->size() + 65536)
      throw FormatError(file, detail::str_cat(where, ": id ", k, " is far beyond the vocabulary of ", tokens.size()));
    if (k >= tokens.size()) {
      tokens.resize(k + 1);
      types.resize(k + 1, TokenType::Unused);
    }
    tokens[k] = content.get<std::string>();
    types[k] = t.value("special", false) ? TokenType::Control : TokenType::UserDefined;
  }
}

/// BOS from the post-processor's template (TemplateProcessing "single": [{"SpecialToken": ...}, ...]).
inline std::int32_t hf_template_bos(const nlohmann::json& root, const std::vector<std::string>& tokens) {
  auto pp = root.find("post_processor");
  if (pp == root.end() || !pp->is_object()) return -1;
  const nlohmann::json* proc = &*pp;
  if (pp->value("type", "") == "Sequence" && pp->contains("processors") && (*pp)["processors"].is_array()) {
    for (const auto& p : (*pp)["processors"])
      if (p.is_object() && p.value("type", "") == "TemplateProcessing") proc = &p;
  }
  if (proc->value("type", "") != "TemplateProcessing") return -1;
  auto single = proc->find("single");
  if (single == proc->end() || !single->is_array() || single->empty()) return -1;
  const auto& first = (*single)[0];
  if (!first.is_object() || !first.contains("SpecialToken") || !first["SpecialToken"].is_object()) return -1;
  const std::string name = first["SpecialToken"].value("id", "");
  for (std::size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] == name) return static_cast<std::int32_t>(i);
  return -1;
}

inline std::int32_t find_first(const std::vector<std::string>& tokens, std::initializer_list<const char*> names) {
  for (const char* n : names)
    for (std::size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] == n) return static_cast<std::int32_t>(i);
  return -1;
}

}  // namespace detail

/// Builds a byte-level BPE tokenizer from a parsed tokenizer.json (GPT-2 layout).
inline ByteLevelBpeTokenizer byte_level_bpe_from_hf_json(const nlohmann::json& root, const std::string& file) {
  const auto& model = detail::json_field(root, "model", file, "tokenizer.json");
  if (root.contains("pre_tokenizer") && detail::json_has_type(root["pre_tokenizer"], "Split"))
    throw UnsupportedError(file + ": pre-tokenizer uses its own Split regex; only GPT-2's pre-tokenization is supported");
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  detail::json_vocab_to_vector(detail::json_field(model, "vocab", file, "model"), file, "model.vocab", tokens, types);
  const auto merges = detail::hf_merges(model, file);
  detail::hf_added_tokens(root, file, tokens, types);
  SpecialIds ids;
  ids.bos = detail::hf_template_bos(root, tokens);
  ids.add_bos = ids.bos >= 0;
  if (ids.bos < 0) ids.bos = detail::find_first(tokens, {"<|endoftext|>", "<|begin_of_text|>", "<s>"});
  ids.eos = detail::find_first(tokens, {"<|endoftext|>", "<|end_of_text|>", "</s>"});
  if (model.contains("unk_token") && model["unk_token"].is_string())
    ids.unk = detail::find_first(tokens, {model["unk_token"].get_ref<const std::string&>().c_str()});
  ByteLevelBpeTokenizer tok(tokens, merges, std::move(types), ids, file);
  if (root.contains("pre_tokenizer") && root["pre_tokenizer"].is_object() &&
      root["pre_tokenizer"].value("type", "") == "ByteLevel")
    tok.set_add_prefix_space(root["pre_tokenizer"].value("add_prefix_space", false));
  return tok;
}

/// Builds a SentencePiece-style BPE tokenizer from a parsed tokenizer.json (Llama layout).
inline SentencePieceBpeTokenizer sentencepiece_bpe_from_hf_json(const nlohmann::json& root, const std::string& file) {
  const auto& model = detail::json_field(root, "model", file, "tokenizer.json");
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  detail::json_vocab_to_vector(detail::json_field(model, "vocab", file, "model"), file, "model.vocab", tokens, types);
  const auto merges = detail::hf_merges(model, file);
  // Earlier merges win: score = -rank of the merge producing the piece; pieces no merge
  // produces rank below all of them.
  std::vector<float> scores(tokens.size(), -static_cast<float>(merges.size() + 1));
  std::unordered_map<std::string, std::int32_t> id_of;
  for (std::size_t i = 0; i < tokens.size(); ++i) id_of.emplace(tokens[i], static_cast<std::int32_t>(i));
  for (std::size_t rank = merges.size(); rank-- > 0;) {
    const std::string& m = merges[rank];
    const auto sp = m.find(' ');
    if (sp == std::string::npos) throw FormatError(file, detail::str_cat("model.merges[", rank, "] has no space"));
    auto it = id_of.find(m.substr(0, sp) + m.substr(sp + 1));
    if (it == id_of.end()) throw FormatError(file, detail::str_cat("model.merges[", rank, "] makes a piece not in model.vocab"));
    scores[static_cast<std::size_t>(it->second)] = -static_cast<float>(rank);
  }
  const bool byte_fallback = model.value("byte_fallback", false);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (byte_fallback && t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>') types[i] = TokenType::Byte;
  }
  detail::hf_added_tokens(root, file, tokens, types);
  scores.resize(tokens.size(), -static_cast<float>(merges.size() + 1));
  SpecialIds ids;
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    ids.unk = detail::find_first(tokens, {model["unk_token"].get_ref<const std::string&>().c_str()});
    if (ids.unk >= 0) types[static_cast<std::size_t>(ids.unk)] = TokenType::Unknown;
  }
  ids.bos = detail::hf_template_bos(root, tokens);
  ids.add_bos = ids.bos >= 0;
  if (ids.bos < 0) ids.bos = detail::find_first(tokens, {"<s>"});
  ids.eos = detail::find_first(tokens, {"</s>"});
  SentencePieceOptions opts;
  opts.add_dummy_prefix = false;
  // The dummy prefix is written as a Prepend("▁") normalizer or a Metaspace pre-tokenizer.
  if (root.contains("normalizer") && detail::json_has_type(root["normalizer"], "Prepend")) opts.add_dummy_prefix = true;
  if (root.contains("pre_tokenizer") && root["pre_tokenizer"].is_object() &&
      root["pre_tokenizer"].value("type", "") == "Metaspace") {
    const auto& m = root["pre_tokenizer"];
    opts.add_dummy_prefix = m.value("add_prefix_space", true) && m.value("prepend_scheme", "always") != "never";
  }
  return SentencePieceBpeTokenizer(std::move(tokens), std::move(scores), std::move(types), ids, opts, file);
}

/// Loads a tokenizer.json, choosing the layout as described above. Throws FormatError for
/// malformed JSON or missing fields, UnsupportedError for models other than BPE.
inline std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::filesystem::path& path) {
  const std::string file = path.string();
  const nlohmann::json root = detail::parse_json_file(path);
  try {
    const auto& model = detail::json_field(root, "model", file, "tokenizer.json");
    const std::string type = model.value("type", "BPE");
    if (type != "BPE") throw UnsupportedError(detail::str_cat(file, ": model type \"", type, "\" is not supported (only BPE)"));
    const bool byte_level = (root.contains("pre_tokenizer") && detail::json_has_type(root["pre_tokenizer"], "ByteLevel")) ||
                            (root.contains("decoder") && detail::json_has_type(root["decoder"], "ByteLevel"));
    if (byte_level) return std::make_unique<ByteLevelBpeTokenizer>(byte_level_bpe_from_hf_json(root, file));
    return std::make_unique<SentencePieceBpeTokenizer>(sentencepiece_bpe_from_hf_json(root, file));
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong JSON type somewhere we did not check explicitly.
    throw FormatError(file, detail::str_cat("unexpected JSON structure: ", e.what()));
  }
}

}  // namespace tinfer
