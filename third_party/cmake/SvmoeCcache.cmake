# Use ccache when present. Precompiled headers need ccache's pch sloppiness. CCACHE_BASEDIR makes
# paths under the checkout relative in ccache's hash, so another clone (CI's) hits the same cache.
if(SVMOE_USE_CCACHE)
  find_program(SVMOE_CCACHE ccache)
  if(SVMOE_CCACHE)
    set(CMAKE_CXX_COMPILER_LAUNCHER
        "${CMAKE_COMMAND};-E;env;CCACHE_BASEDIR=${CMAKE_SOURCE_DIR};CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime;${SVMOE_CCACHE}")
    message(STATUS "svmoe: compiling through ccache (${SVMOE_CCACHE})")
  endif()
endif()
