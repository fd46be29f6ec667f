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

# yaml-cpp 0.7's package names its target `yaml-cpp`; newer ones add `yaml-cpp::yaml-cpp`.
if(NOT TARGET yaml-cpp AND TARGET yaml-cpp::yaml-cpp)
  add_library(yaml-cpp ALIAS yaml-cpp::yaml-cpp)
endif()

