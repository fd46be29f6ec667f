#include "svmoe/util/error.h"

#include <cerrno>
#include <cstring>

namespace svmoe {

// strerror(errno) is read at once, before anything else can overwrite errno.
std::string describe_errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace svmoe
