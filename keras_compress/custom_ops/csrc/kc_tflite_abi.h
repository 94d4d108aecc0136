/* The C structs of LiteRT (TFLite) and of the pip tflite-micro wheel that
 * the keras-compress delegate (kc_litert_delegate.c) and the wheel's
 * registerer (kc_tflm_python.c) read, declared here so that they build
 * without a LiteRT or TFLM source tree.
 *
 * Layouts follow LiteRT's public C API (tflite/core/c/common.h, LiteRT 2.x)
 * field for field up to the last field used; structs the runtime copies by
 * value (TfLiteRegistration) are complete. The TFLM node and registration
 * are those of TFLM's TF_LITE_STATIC_MEMORY build, as the pinned wheel lays
 * them out. Firmware does not use this file: kc_tflm_ops.h includes TFLM's
 * own headers.
 */
#ifndef KC_TFLITE_ABI_H_
#define KC_TFLITE_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  kTfLiteOk = 0,
  kTfLiteError = 1,
  kTfLiteDelegateError = 2
} TfLiteStatus;

/* TfLiteType values the operators use. */
enum { kTfLiteInt32 = 2, kTfLiteUInt8 = 3, kTfLiteInt8 = 9 };
/* BuiltinOperator values. */
enum { kc_builtin_custom = 32 };

typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef struct TfLiteQuantization {
  int type;
  void* params;
} TfLiteQuantization;

typedef struct TfLiteTensor {
  int type;
  void* data;
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  int allocation_type;
  size_t bytes;
  const void* allocation;
  const char* name;
  struct TfLiteDelegate* delegate;
  int buffer_handle;
  _Bool data_is_stale;
  _Bool is_variable;
  TfLiteQuantization quantization;
  void* sparsity;
  const TfLiteIntArray* dims_signature;
} TfLiteTensor;

/* TFLM's tensors at run time. */
typedef struct TfLiteEvalTensor {
  void* data;
  TfLiteIntArray* dims;
  int type;
} TfLiteEvalTensor;

/* LiteRT's node. */
typedef struct TfLiteNode {
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  TfLiteIntArray* intermediates;
  TfLiteIntArray* temporaries;
  void* user_data;
  void* builtin_data;
  const void* custom_initial_data;
  int custom_initial_data_size;
  struct TfLiteDelegate* delegate;
  _Bool might_have_side_effect;
} TfLiteNode;

/* TFLM's node (TF_LITE_STATIC_MEMORY). */
typedef struct TfLiteMicroNode {
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  TfLiteIntArray* intermediates;
  void* user_data;
  void* builtin_data;
  const void* custom_initial_data;
  int custom_initial_data_size;
} TfLiteMicroNode;

struct TfLiteContext;

typedef struct TfLiteRegistration {
  void* (*init)(struct TfLiteContext* context, const char* buffer,
                size_t length);
  void (*free)(struct TfLiteContext* context, void* buffer);
  TfLiteStatus (*prepare)(struct TfLiteContext* context, TfLiteNode* node);
  TfLiteStatus (*invoke)(struct TfLiteContext* context, TfLiteNode* node);
  const char* (*profiling_string)(const struct TfLiteContext* context,
                                  const TfLiteNode* node);
  int32_t builtin_code;
  const char* custom_name;
  int version;
  void* registration_external;
  void* (*async_kernel)(struct TfLiteContext* context, TfLiteNode* node);
  uint64_t inplace_operator;
} TfLiteRegistration;

/* TFLM's registration (tensorflow/lite/micro/micro_common.h). */
typedef struct KcMicroRegistration {
  void* (*init)(struct TfLiteContext* context, const char* buffer,
                size_t length);
  void (*free)(struct TfLiteContext* context, void* buffer);
  TfLiteStatus (*prepare)(struct TfLiteContext* context, TfLiteMicroNode* node);
  TfLiteStatus (*invoke)(struct TfLiteContext* context, TfLiteMicroNode* node);
  void (*reset)(struct TfLiteContext* context, void* buffer);
  int32_t builtin_code;
  const char* custom_name;
} KcMicroRegistration;

typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext* context,
                                   TfLiteIntArray** execution_plan);
  TfLiteTensor* tensors;
  void* impl_;
  TfLiteStatus (*ResizeTensor)(struct TfLiteContext* context,
                               TfLiteTensor* tensor, TfLiteIntArray* new_size);
  void (*ReportError)(struct TfLiteContext* context, const char* msg, ...);
  TfLiteStatus (*AddTensors)(struct TfLiteContext* context, int count,
                             int* first_new_tensor_index);
  TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext* context,
                                         int node_index, TfLiteNode** node,
                                         TfLiteRegistration** registration);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(
      struct TfLiteContext* context, TfLiteRegistration registration,
      const TfLiteIntArray* nodes_to_replace, struct TfLiteDelegate* delegate);
  int recommended_num_threads;
  void* (*GetExternalContext)(struct TfLiteContext* context, int type);
  void (*SetExternalContext)(struct TfLiteContext* context, int type,
                             void* external);
  _Bool allow_fp32_relax_to_fp16;
  void* profiler;
  void* (*AllocatePersistentBuffer)(struct TfLiteContext* context,
                                    size_t bytes);
  TfLiteStatus (*AllocateBufferForEval)(struct TfLiteContext* context,
                                        size_t bytes, void** ptr);
  TfLiteStatus (*RequestScratchBufferInArena)(struct TfLiteContext* context,
                                              size_t bytes, int* buffer_idx);
  void* (*GetScratchBuffer)(struct TfLiteContext* context, int buffer_idx);
  TfLiteStatus (*ResizeTensorExplicit)(struct TfLiteContext* context,
                                       TfLiteTensor* tensor, int dims,
                                       const int* shape);
  void* PreviewDelegatePartitioning;
  TfLiteTensor* (*GetTensor)(const struct TfLiteContext* context,
                             int tensor_idx);
  TfLiteEvalTensor* (*GetEvalTensor)(const struct TfLiteContext* context,
                                     int tensor_idx);
} TfLiteContext;

typedef struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(TfLiteContext* context,
                          struct TfLiteDelegate* delegate);
  void* CopyFromBufferHandle;
  void* CopyToBufferHandle;
  void* FreeBufferHandle;
  int64_t flags;
  void* opaque_delegate_builder;
} TfLiteDelegate;

typedef struct TfLiteDelegateParams {
  TfLiteDelegate* delegate;
  TfLiteIntArray* nodes_to_replace;
  TfLiteIntArray* input_tensors;
  TfLiteIntArray* output_tensors;
} TfLiteDelegateParams;

#ifdef __cplusplus
}
#endif

#endif /* KC_TFLITE_ABI_H_ */
