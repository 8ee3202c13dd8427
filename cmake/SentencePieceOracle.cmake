# Optional detection of the sentencepiece C++ library (Debian/Ubuntu: libsentencepiece-dev),
# used only by tests and benchmarks as an oracle. Sets TINFER_HAVE_SENTENCEPIECE and, when
# found, defines the imported target tinfer_sentencepiece. Safe to include more than once.
if(NOT DEFINED TINFER_WITH_SENTENCEPIECE)
  option(TINFER_WITH_SENTENCEPIECE "Compare against the sentencepiece library when it is installed" ON)
endif()
set(TINFER_HAVE_SENTENCEPIECE OFF)
if(TINFER_WITH_SENTENCEPIECE)
  find_library(SENTENCEPIECE_LIB sentencepiece)
  find_path(SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
  if(SENTENCEPIECE_LIB AND SENTENCEPIECE_INCLUDE_DIR)
    set(TINFER_HAVE_SENTENCEPIECE ON)
    if(NOT TARGET tinfer_sentencepiece)
      add_library(tinfer_sentencepiece UNKNOWN IMPORTED GLOBAL)
      set_target_properties(tinfer_sentencepiece PROPERTIES
        IMPORTED_LOCATION "${SENTENCEPIECE_LIB}"
        INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${SENTENCEPIECE_INCLUDE_DIR}"
        INTERFACE_INCLUDE_DIRECTORIES "${SENTENCEPIECE_INCLUDE_DIR}")
      message(STATUS "tinfer: sentencepiece found (${SENTENCEPIECE_LIB}); oracle tests and benchmarks enabled")
    endif()
  elseif(NOT _tinfer_sp_reported)
    set(_tinfer_sp_reported TRUE)
    message(STATUS "tinfer: sentencepiece not found (install libsentencepiece-dev); oracle tests skipped")
  endif()
endif()
