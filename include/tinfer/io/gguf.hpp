// tinfer/io/gguf.hpp: GGUF files, everything at once: values (gguf_value.hpp), the reader
// GgufFile (gguf_reader.hpp) and the writer GgufWriter (gguf_writer.hpp).
#pragma once

#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/io/gguf_value.hpp"
#include "tinfer/io/gguf_writer.hpp"
