// tinfer/models/model.hpp: any supported model behind one interface, and load_model(), which
// opens a model file of any supported format.
//
// Client code that knows its model family can use LlamaModel / Gpt2Model directly (no virtual
// calls); programs that accept any file use Model and Session.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/models/gguf_loader.hpp"
#include "tinfer/models/gpt2.hpp"
#include "tinfer/models/hf_loader.hpp"
#include "tinfer/models/linear_observer.hpp"
#include "tinfer/models/llama.hpp"
#include "tinfer/models/session_options.hpp"
#include "tinfer/tokenizer/gguf_tokenizer.hpp"
#include "tinfer/tokenizer/load_tokenizer.hpp"
#include "tinfer/tokenizer/tokenizer.hpp"

namespace tinfer {

/// The state of one sequence of a Model (its KV cache). Not thread-safe: one thread at a time.
class Session {
 public:
  virtual ~Session() = default;
  /// Positions this session can hold.
  virtual int context() const noexcept = 0;
  /// Sees the input of every linear layer from now on (nullptr: none); see linear_observer.hpp.
  virtual void set_linear_observer(LinearObserver* observer) noexcept = 0;
  /// The KV cache (element types, capacity, bytes per token).
  virtual const KVCache& cache() const noexcept = 0;
  /// Positions [0, n_past) are in the cache (one past the highest position last written).
  virtual int n_past() const noexcept = 0;
  /// Forgets positions [n, n_past): the next token goes to position n.
  virtual void truncate(int n) = 0;
  /// Makes this session hold the first n positions of `src`, a session of the same model with the
  /// same options (a fork sharing a prompt computed once). InvalidArgument otherwise.
  virtual void copy_prefix_from(const Session& src, int n) = 0;
  /// Saves the cache and the last logits to a file (attention/session_state.hpp); load() restores
  /// it into a session of the same model and options (FormatError naming the field otherwise).
  virtual void save(const std::string& path) const = 0;
  virtual void load(const std::string& path) = 0;
  /// The logits of the last token fed (or restored by load()); empty when none.
  virtual std::span<const float> last_logits() const noexcept = 0;
};

/// File formats load_model() recognises.
enum class ModelFormat { Gguf, Llama2c, HuggingFace };

/// A loaded model: immutable, shareable by threads (each with its own Session).
class Model {
 public:
  virtual ~Model() = default;
  /// "llama" or "gpt2".
  virtual std::string_view architecture() const noexcept = 0;
  virtual ModelFormat format() const noexcept = 0;
  virtual int vocab_size() const noexcept = 0;
  /// The longest context the model supports.
  virtual int max_context() const noexcept = 0;
  /// The model's BOS and EOS ids (-1 when it has none).
  virtual std::int32_t bos_id() const noexcept = 0;
  virtual std::int32_t eos_id() const noexcept = 0;
  /// A new session with the given context size and KV cache types.
  virtual std::unique_ptr<Session> new_session(const SessionOptions& options) const = 0;
  /// A new session of `context` positions (0: max_context()) with an F32 cache.
  std::unique_ptr<Session> new_session(int context = 0) const { return new_session(SessionOptions{.context = context}); }
  /// Feeds `token` at `pos` of `session` (which must come from this model) and returns the
  /// next-token logits, valid until the next call on that session.
  virtual std::span<float> forward(Session& session, std::int32_t token, int pos, ThreadPool* pool = nullptr) const = 0;
  /// Feeds tokens[i] at pos0 + i for every i; returns the last token's logits, or with
  /// all_logits every token's (tokens.size() rows of vocab_size()), valid until the next call.
  virtual std::span<float> forward_batch(Session& session, std::span<const std::int32_t> tokens, int pos0,
                                         ThreadPool* pool = nullptr, bool all_logits = false) const = 0;
  /// One token for each of several sessions (tokens[i] at positions[i] of *sessions[i]) in one
  /// pass sharing every weight read; returns sessions.size() rows of vocab_size() logits, valid
  /// until the next call on sessions[0].
  virtual std::span<float> forward_multi(std::span<Session* const> sessions, std::span<const std::int32_t> tokens,
                                         std::span<const int> positions, ThreadPool* pool = nullptr) const = 0;
  /// Whether context_shift() works for this model (RoPE models: yes; GPT-2: no).
  virtual bool can_context_shift() const noexcept = 0;
  /// Drops positions [n_keep, n_keep + n_discard) of the session and moves the rest down,
  /// re-rotating the kept keys (RoPE); the next token goes to session.n_past().
  /// UnsupportedError when !can_context_shift().
  virtual void context_shift(Session& session, int n_keep, int n_discard) const = 0;
};

namespace model_detail {

template <class S>
class SessionOf final : public Session {
 public:
  template <class M>
  SessionOf(const M& m, const SessionOptions& opt) : s(m, opt) {}
  int context() const noexcept override { return s.context(); }
  void set_linear_observer(LinearObserver* observer) noexcept override { s.set_linear_observer(observer); }
  const KVCache& cache() const noexcept override { return s.cache(); }
  int n_past() const noexcept override { return s.n_past(); }
  void truncate(int n) override { s.truncate(n); }
  void copy_prefix_from(const Session& src, int n) override {
    const auto* o = dynamic_cast<const SessionOf<S>*>(&src);
    if (o == nullptr) throw InvalidArgument("copy_prefix_from(): the source session belongs to a model of another kind");
    s.copy_prefix_from(o->s, n);
  }
  void save(const std::string& path) const override { s.save(path); }
  void load(const std::string& path) override { s.load(path); }
  std::span<const float> last_logits() const noexcept override { return s.last_logits(); }
  S s;
};

template <class M, class S>
class ModelOf final : public Model {
 public:
  ModelOf(M m, std::string_view arch, ModelFormat format) : m_(std::move(m)), arch_(arch), format_(format) {}
  std::string_view architecture() const noexcept override { return arch_; }
  ModelFormat format() const noexcept override { return format_; }
  int vocab_size() const noexcept override { return m_.config().vocab_size; }
  int max_context() const noexcept override { return m_.config().max_seq_len; }
  std::int32_t bos_id() const noexcept override { return m_.config().bos_id; }
  std::int32_t eos_id() const noexcept override { return m_.config().eos_id; }
  using Model::new_session;
  std::unique_ptr<Session> new_session(const SessionOptions& opt) const override {
    return std::make_unique<SessionOf<S>>(m_, opt);
  }
  std::span<float> forward(Session& session, std::int32_t token, int pos, ThreadPool* pool) const override {
    return m_.forward(typed_session(session), token, pos, pool);
  }
  std::span<float> forward_batch(Session& session, std::span<const std::int32_t> tokens, int pos0, ThreadPool* pool,
                                 bool all_logits) const override {
    return m_.forward_batch(typed_session(session), tokens, pos0, pool, all_logits);
  }
  std::span<float> forward_multi(std::span<Session* const> sessions, std::span<const std::int32_t> tokens,
                                 std::span<const int> positions, ThreadPool* pool) const override {
    std::vector<S*> typed(sessions.size());
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      if (sessions[i] == nullptr) throw InvalidArgument("forward_multi(): a session pointer is null");
      typed[i] = &typed_session(*sessions[i]);
    }
    return m_.forward_multi(std::span<S* const>(typed), tokens, positions, pool);
  }
  bool can_context_shift() const noexcept override { return std::is_same_v<M, LlamaModel>; }
  void context_shift(Session& session, int n_keep, int n_discard) const override {
    m_.context_shift(typed_session(session), n_keep, n_discard);
  }
  /// The typed session inside `session`; InvalidArgument when it belongs to another kind of model.
  static S& typed_session(Session& session) {
    auto* s = dynamic_cast<SessionOf<S>*>(&session);
    if (s == nullptr) throw InvalidArgument("the session belongs to a model of another kind");
    return s->s;
  }
  const M& typed() const noexcept { return m_; }

 private:
  M m_;
  std::string_view arch_;
  ModelFormat format_;
};

}  // namespace model_detail

/// Wraps a typed model.
inline std::unique_ptr<Model> make_model(LlamaModel m, ModelFormat format) {
  return std::make_unique<model_detail::ModelOf<LlamaModel, LlamaSession>>(std::move(m), "llama", format);
}
inline std::unique_ptr<Model> make_model(Gpt2Model m, ModelFormat format = ModelFormat::Gguf) {
  return std::make_unique<model_detail::ModelOf<Gpt2Model, Gpt2Session>>(std::move(m), "gpt2", format);
}

/// A model from an opened GGUF file (architectures "llama" and "gpt2").
inline std::unique_ptr<Model> load_model(std::shared_ptr<const io::GgufFile> file) {
  const std::string arch = gguf_architecture(*file);
  if (arch == "llama") return make_model(load_llama_gguf(std::move(file)), ModelFormat::Gguf);
  if (arch == "gpt2") return make_model(load_gpt2_gguf(std::move(file)), ModelFormat::Gguf);
  throw UnsupportedError(detail::str_cat(file->path(), ": model architecture '", arch, "' is not supported (supported: llama, gpt2)"));
}

/// Which format `path` holds, from its first bytes: GGUF starts with "GGUF"; anything else is
/// taken for a llama2.c checkpoint (which has no magic; its header is validated on loading).
inline ModelFormat detect_model_format(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(detail::str_cat(path, ": cannot open model file"));
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return ModelFormat::Gguf;
  return ModelFormat::Llama2c;
}

/// A model from a Hugging Face folder (config.json model_type "llama" or "gpt2").
inline std::unique_ptr<Model> load_hf_model(const std::filesystem::path& folder) {
  const std::string type = hf_model_type(folder);
  if (type == "llama") return make_model(load_llama_hf(folder), ModelFormat::HuggingFace);
  if (type == "gpt2") return make_model(load_gpt2_hf(folder), ModelFormat::HuggingFace);
  throw UnsupportedError(detail::str_cat((folder / "config.json").string(), ": model_type '", type,
                                         "' is not supported (supported: llama, gpt2)"));
}

/// Loads a model: a GGUF file (llama or gpt2), a Hugging Face folder (config.json +
/// safetensors), or a llama2.c checkpoint.
inline std::unique_ptr<Model> load_model(const std::string& path) {
  if (std::filesystem::is_directory(path)) return load_hf_model(path);
  if (detect_model_format(path) == ModelFormat::Gguf) return load_model(std::make_shared<const io::GgufFile>(path));
  return make_model(LlamaModel::load_llama2c(path), ModelFormat::Llama2c);
}

/// The tokenizer stored with the model at `path`: a GGUF file's metadata or a Hugging Face
/// folder's tokenizer files. Throws IoError, saying to pass a tokenizer, when there is none
/// (a llama2.c checkpoint never holds one).
inline std::unique_ptr<Tokenizer> load_model_tokenizer(const std::string& path, const Model& model) {
  switch (model.format()) {
    case ModelFormat::Gguf: {
      const io::GgufFile f(path);
      if (!gguf_has_tokenizer(f)) throw IoError(detail::str_cat(path, ": the GGUF file holds no tokenizer: pass one (-z)"));
      return load_gguf_tokenizer(f);
    }
    case ModelFormat::HuggingFace:
      try {
        return load_tokenizer(path);
      } catch (const IoError&) {
        throw IoError(detail::str_cat(path, ": the folder holds no tokenizer files: pass one (-z)"));
      }
    case ModelFormat::Llama2c:
      break;
  }
  throw IoError(detail::str_cat(path, ": a llama2.c checkpoint holds no tokenizer: pass one (-z)"));
}

}  // namespace tinfer
