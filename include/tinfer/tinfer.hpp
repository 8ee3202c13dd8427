// tinfer/tinfer.hpp: the umbrella header; includes every public header of the library.
#pragma once

// core: errors, element types, tensors, files, threads
#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/float16.hpp"
#include "tinfer/core/mapped_file.hpp"
#include "tinfer/core/tensor.hpp"
#include "tinfer/core/thread_pool.hpp"

// io: file formats
#include "tinfer/io/byte_reader.hpp"
