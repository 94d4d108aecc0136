// The keras-compress binary operators in TensorFlow Lite Micro firmware.
//
//   #include "kc_tflm_ops.h"
//   tflite::MicroMutableOpResolver<N> resolver;  // N counts these two too
//   ...
//   if (KcAddBinaryOps(resolver) != kTfLiteOk) { /* resolver too small */ }
//
// Compile kc_binary.c (C99) with the firmware. The kernels use TFLM's C++
// kernel API (GetMicroContext, micro::GetEvalInput); the context, node,
// status and registration types are taken from the resolver, so the same
// header serves TFLM sources from before and after their 2026 move into
// namespace tflite::micro.
#ifndef KC_TFLM_OPS_H_
#define KC_TFLM_OPS_H_

#include <stddef.h>
#include <stdint.h>

#include <type_traits>

#include "kc_binary.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"

namespace kc_tflm {

template <typename F>
struct Signature;
template <typename R, typename A, typename B>
struct Signature<R (*)(A, B)> {
  using Result = R;
  using First = A;
  using Second = B;
};

template <typename Registration>
struct BinaryKernels {
  using Prepare = decltype(Registration::prepare);
  using Status = typename Signature<Prepare>::Result;
  using ContextPtr = typename Signature<Prepare>::First;
  using NodePtr = typename Signature<Prepare>::Second;

  struct OpData {
    kc_options options;
    int status;
    int scratch_index;
    int32_t batch;
  };

  static Status Ok() { return static_cast<Status>(0); }
  static Status Error() { return static_cast<Status>(1); }

  template <typename EvalTensor>
  static kc_tensor_info Info(const EvalTensor* t) {
    kc_tensor_info info = {-1, -2};
    if (t == nullptr || t->dims == nullptr) return info;
    info.type = static_cast<int32_t>(t->type);
    info.elements = 1;
    for (int i = 0; i < t->dims->size; ++i) {
      if (t->dims->data[i] < 0) return info;
      info.elements *= t->dims->data[i];
    }
    return info;
  }

  static void* Init(ContextPtr context, const char* buffer, size_t length) {
    using namespace tflite;
    OpData* data = static_cast<OpData*>(
        GetMicroContext(context)->AllocatePersistentBuffer(sizeof(OpData)));
    if (data == nullptr) return nullptr;
    data->scratch_index = -1;
    data->batch = 0;
    data->status = length == KC_OPTIONS_BYTES
                       ? kc_parse_options(reinterpret_cast<const uint8_t*>(buffer),
                                          static_cast<int32_t>(length), &data->options)
                       : KC_BAD_OPTIONS;
    return data;
  }

  static Status PrepareKind(ContextPtr context, NodePtr node, int32_t kind) {
    using namespace tflite;
    OpData* data = static_cast<OpData*>(node->user_data);
    if (data == nullptr) return Error();
    if (data->status == KC_OK && data->options.kind != kind) data->status = KC_BAD_OPTIONS;
    if (data->status == KC_OK &&
        (node->inputs->size != 3 || node->outputs->size != 1)) {
      data->status = KC_BAD_SHAPE;
    }
    if (data->status == KC_OK) {
      kc_tensor_info in = Info(micro::GetEvalInput(context, node, 0));
      kc_tensor_info weights = Info(micro::GetEvalInput(context, node, 1));
      kc_tensor_info params = Info(micro::GetEvalInput(context, node, 2));
      kc_tensor_info out = Info(micro::GetEvalOutput(context, node, 0));
      data->status = kc_check_tensors(&data->options, &in, &weights, &params,
                                      &out, &data->batch);
    }
    if (data->status == KC_OK) {
      data->status = kc_check_table(
          &data->options,
          static_cast<const int32_t*>(micro::GetEvalInput(context, node, 2)->data.data));
    }
    if (data->status != KC_OK) {
      MicroPrintf("keras-compress binary operator: %s", kc_status_message(data->status));
      return Error();
    }
    const int32_t bytes = kc_scratch_bytes(&data->options);
    if (bytes == 0) return Ok();
    return GetMicroContext(context)->RequestScratchBufferInArena(
        static_cast<size_t>(bytes), &data->scratch_index);
  }

  static Status PrepareFc(ContextPtr context, NodePtr node) {
    return PrepareKind(context, node, KC_FC);
  }

  static Status PrepareConv2D(ContextPtr context, NodePtr node) {
    return PrepareKind(context, node, KC_CONV2D);
  }

  static Status Invoke(ContextPtr context, NodePtr node) {
    using namespace tflite;
    const OpData* data = static_cast<const OpData*>(node->user_data);
    uint32_t* scratch = nullptr;
    if (data->scratch_index >= 0) {
      scratch = static_cast<uint32_t*>(
          GetMicroContext(context)->GetScratchBuffer(data->scratch_index));
    }
#if defined(TFLITE_SINGLE_ROUNDING) && TFLITE_SINGLE_ROUNDING
    const int32_t rounding = KC_ROUND_SINGLE;  // as TFLM's own kernels
#else
    const int32_t rounding = KC_ROUND_DOUBLE;
#endif
    const int status = kc_binary_run(
        &data->options, rounding, data->batch,
        static_cast<const int8_t*>(micro::GetEvalInput(context, node, 0)->data.data),
        static_cast<const uint8_t*>(micro::GetEvalInput(context, node, 1)->data.data),
        static_cast<const int32_t*>(micro::GetEvalInput(context, node, 2)->data.data),
        static_cast<int8_t*>(micro::GetEvalOutput(context, node, 0)->data.data), scratch,
        kc_scratch_bytes(&data->options));
    return status == KC_OK ? Ok() : Error();
  }
};

}  // namespace kc_tflm

// Adds KC_BINARY_FC and KC_BINARY_CONV2D to a MicroMutableOpResolver.
template <typename Resolver>
auto KcAddBinaryOps(Resolver& resolver) -> decltype(resolver.AddCustom("", nullptr)) {
  using Registration = typename std::remove_cv<typename std::remove_pointer<
      decltype(resolver.FindOp(""))>::type>::type;
  using Kernels = kc_tflm::BinaryKernels<Registration>;
  static Registration fc = {};
  static Registration conv = {};
  fc.init = Kernels::Init;
  fc.prepare = Kernels::PrepareFc;
  fc.invoke = Kernels::Invoke;
  conv.init = Kernels::Init;
  conv.prepare = Kernels::PrepareConv2D;
  conv.invoke = Kernels::Invoke;
  const auto status = resolver.AddCustom("KC_BINARY_FC", &fc);
  if (static_cast<int>(status) != 0) return status;
  return resolver.AddCustom("KC_BINARY_CONV2D", &conv);
}

#endif  // KC_TFLM_OPS_H_
