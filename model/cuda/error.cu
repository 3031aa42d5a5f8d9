// error.cu - the messages of the codes the kernel functions return.
#include "common.cuh"

extern "C" const char *toto_cuda_error_string(int code) {
    return cudaGetErrorString(static_cast<cudaError_t>(code));
}
