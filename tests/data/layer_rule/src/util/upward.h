// A util/ header that reaches up to stages/: the layer check must reject it.
#pragma once

#include "svmoe/stages/merge.h"
