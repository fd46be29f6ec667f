# System dependencies (Debian 12 packages; see third_party/VERSIONS.md).
find_package(spdlog CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(Eigen3 CONFIG REQUIRED)

# sentencepiece: its pkg-config file hard-codes /usr, so look for the files themselves.
find_path(SVMOE_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
find_library(SVMOE_SENTENCEPIECE_LIBRARY sentencepiece)
if(NOT SVMOE_SENTENCEPIECE_INCLUDE_DIR OR NOT SVMOE_SENTENCEPIECE_LIBRARY)
  message(FATAL_ERROR "svmoe: sentencepiece not found; install libsentencepiece-dev (scripts/install-deps.sh)")
endif()
add_library(svmoe::sentencepiece UNKNOWN IMPORTED)
set_target_properties(svmoe::sentencepiece PROPERTIES
  IMPORTED_LOCATION "${SVMOE_SENTENCEPIECE_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${SVMOE_SENTENCEPIECE_INCLUDE_DIR}")
find_package(ZLIB REQUIRED)

# PCRE2 (tokenizer.json regex patterns) and utf8proc (Unicode normalization and classes):
# Debian's libpcre2-dev and libutf8proc-dev, found by their files (no pkg-config needed, so the
# .debs unpacked on the GPU machine are found through CMAKE_PREFIX_PATH too).
function(svmoe_find_c_library target header library package)
  find_path(${target}_INCLUDE_DIR ${header})
  find_library(${target}_LIBRARY ${library})
  if(NOT ${target}_INCLUDE_DIR OR NOT ${target}_LIBRARY)
    message(FATAL_ERROR "svmoe: ${header} / lib${library} not found; install ${package} (scripts/install-deps.sh)")
  endif()
  add_library(svmoe::${target} UNKNOWN IMPORTED)
  set_target_properties(svmoe::${target} PROPERTIES
    IMPORTED_LOCATION "${${target}_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${${target}_INCLUDE_DIR}")
endfunction()
svmoe_find_c_library(pcre2 pcre2.h pcre2-8 libpcre2-dev)
svmoe_find_c_library(utf8proc utf8proc.h utf8proc libutf8proc-dev)
# Zstandard (.jsonl.zst corpora): Debian's libzstd-dev.
svmoe_find_c_library(zstd zstd.h zstd libzstd-dev)

# cpp-httplib (svmoe serve's HTTP): Debian's libcpp-httplib-dev, a compiled library whose header
# must be read with the definitions it was built with (TLS, compression). Through its pkg-config
# file where pkg-config finds it; else by its files (the .debs unpacked on the GPU machine, found
# through CMAKE_PREFIX_PATH), with the definitions Debian builds it with.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(SVMOE_HTTPLIB QUIET IMPORTED_TARGET GLOBAL cpp-httplib)
endif()
if(TARGET PkgConfig::SVMOE_HTTPLIB)
  add_library(svmoe::httplib ALIAS PkgConfig::SVMOE_HTTPLIB)
else()
  svmoe_find_c_library(httplib httplib.h cpp-httplib libcpp-httplib-dev)
  find_package(OpenSSL REQUIRED)
  set_target_properties(svmoe::httplib PROPERTIES
    INTERFACE_COMPILE_DEFINITIONS "CPPHTTPLIB_OPENSSL_SUPPORT;CPPHTTPLIB_ZLIB_SUPPORT;CPPHTTPLIB_BROTLI_SUPPORT"
    INTERFACE_LINK_LIBRARIES "OpenSSL::SSL;ZLIB::ZLIB")
endif()

# Protocol Buffers (TensorBoard event files, src/io/tensorboard_event.proto): Debian's
# libprotobuf-dev and protoc (protobuf-compiler), through CMake's FindProtobuf. The same
# libprotobuf that Debian's LibTorch links.
find_package(Protobuf REQUIRED)

# yaml-cpp 0.7's package names its target `yaml-cpp`; newer ones `yaml-cpp::yaml-cpp` (and
# deprecate the old name).
if(TARGET yaml-cpp::yaml-cpp)
  set(SVMOE_YAML_CPP yaml-cpp::yaml-cpp)
else()
  set(SVMOE_YAML_CPP yaml-cpp)
endif()

