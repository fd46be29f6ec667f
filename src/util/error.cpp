#include "svmoe/util/error.h"

#include <cerrno>
#include <cstring>

namespace svmoe {

std::string describe_errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace svmoe
