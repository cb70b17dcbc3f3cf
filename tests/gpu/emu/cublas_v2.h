/* cublas_v2.h - the handle calls of the GPU checks, for the CPU emulation
 * of tests/gpu/emu/run.sh (the products themselves: dense_emu.c). */
#ifndef EMU_CUBLAS_V2_H
#define EMU_CUBLAS_V2_H
typedef struct cublasContext *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0 } cublasStatus_t;
static inline cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = 0; return CUBLAS_STATUS_SUCCESS; }
static inline cublasStatus_t cublasDestroy(cublasHandle_t h) { (void)h; return CUBLAS_STATUS_SUCCESS; }
#endif
