# Finds LibTorch, in this order:
#   1. -DTorch_DIR=... or CMAKE_PREFIX_PATH (what the user named),
#   2. an installed Python `torch` (torch.utils.cmake_prefix_path),
#   3. the system (Debian's libtorch-dev).
find_package(Torch CONFIG QUIET NO_CMAKE_SYSTEM_PATH NO_SYSTEM_ENVIRONMENT_PATH)

if(NOT Torch_FOUND)
  find_program(SVMOE_PYTHON NAMES python3 python)
  if(SVMOE_PYTHON)
    execute_process(
      COMMAND "${SVMOE_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE SVMOE_PY_TORCH_PREFIX OUTPUT_STRIP_TRAILING_WHITESPACE
      ERROR_QUIET RESULT_VARIABLE SVMOE_PY_TORCH_RC)
    if(SVMOE_PY_TORCH_RC EQUAL 0 AND SVMOE_PY_TORCH_PREFIX)
      find_package(Torch CONFIG QUIET PATHS "${SVMOE_PY_TORCH_PREFIX}" NO_DEFAULT_PATH)
    endif()
  endif()
endif()

if(NOT Torch_FOUND)
  find_package(Torch CONFIG QUIET)
endif()

if(NOT Torch_FOUND)
  message(FATAL_ERROR
    "svmoe: LibTorch not found. Install it with scripts/install-deps.sh (Debian's libtorch-dev), "
    "or pass -DTorch_DIR=/path/to/share/cmake/Torch, or install a Python torch.")
endif()

# Torch's CMake package puts its ABI flag in TORCH_CXX_FLAGS; every target must agree on it.
string(APPEND CMAKE_CXX_FLAGS " ${TORCH_CXX_FLAGS}")
message(STATUS "svmoe: LibTorch ${Torch_VERSION} from ${Torch_DIR}")

# LibTorch 2.x headers need C++20 from 2.10 on (2.14: "#error C++20 or later"); 1.13's are
# C++17 code that C++20 would warn on. So: C++17 for 1.x, C++20 for every 2.x.
if(Torch_VERSION VERSION_GREATER_EQUAL 2.0)
  set(CMAKE_CXX_STANDARD 20)
else()
  set(CMAKE_CXX_STANDARD 17)
endif()
message(STATUS "svmoe: C++${CMAKE_CXX_STANDARD}")
