// 2-D convolution on CPU through oneDNN, as MindSpore AOT custom-op entry points, on all the process's cores.
//
// MindSpore 2.7.1 runs its CPU Conv2D (and both gradients) through the oneDNN it bundles (libdnnl.so.2, built with
// the threadpool runtime) on plain NCHW / OIHW memory, where oneDNN picks its im2col + GEMM path ("gemm:jit"), and
// executes it on a stream without a threadpool, i.e. on one core. These entry points use the same library but let
// oneDNN choose its blocked layouts (direct JIT kernels) and give the stream a threadpool of their own, so a
// convolution runs on every core of the process's CPU affinity set; inputs and outputs stay plain NCHW / OIHW
// (reordered in and out). The primitives are created once per shape and cached.
//
//   Conv2dForward          inputs: x [N, C, H, W], weight [O, C, KH, KW], geometry [6], out_template [OH, OW]
//                          output: y [N, O, OH, OW]
//   Conv2dBackwardData     inputs: dy [N, O, OH, OW], weight [O, C, KH, KW], geometry [6], x_template [N, C, H, W]
//                          output: dx [N, C, H, W]
//   Conv2dBackwardWeights  inputs: x [N, C, H, W], dy [N, O, OH, OW], geometry [6], weight_template [O, C, KH, KW]
//                          output: dweight [O, C, KH, KW]
// All float32; geometry = (stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right) as float32 values (a tensor:
// MindSpore 2.7.1's AOT attribute reader returns wrong values); templates only give a shape. No dilation, no groups,
// no bias (the Python cell adds the bias). A non-zero return (wrong input, oneDNN error, message on stderr) makes
// MindSpore raise.
#include <oneapi/dnnl/dnnl.hpp>
#include <oneapi/dnnl/dnnl_threadpool.hpp>
#include <sched.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using dnnl::memory;

// Runs oneDNN's parallel loops on the calling thread plus (threads - 1) workers of its own.
class ThreadPool : public dnnl::threadpool_interop::threadpool_iface {
 public:
  explicit ThreadPool(int threads) : threads_(threads) {
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
  }
  ~ThreadPool() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      ++generation_;
    }
    wake_.notify_all();
    for (std::thread &worker : workers_) worker.join();
  }
  int get_num_threads() const override { return threads_; }
  bool get_in_parallel() const override { return in_parallel_.load(); }
  uint64_t get_flags() const override { return 0; }

  void parallel_for(int n, const std::function<void(int, int)> &fn) override {
    if (threads_ == 1 || n <= 1 || in_parallel_.load()) {
      for (int i = 0; i < n; ++i) fn(i, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &fn;
      task_count_ = n;
      next_task_.store(0);
      busy_workers_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    in_parallel_.store(true);
    wake_.notify_all();
    run_tasks();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return busy_workers_ == 0; });
    in_parallel_.store(false);
  }

 private:
  void run_tasks() {
    for (int i = next_task_.fetch_add(1); i < task_count_; i = next_task_.fetch_add(1)) (*task_)(i, task_count_);
  }
  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (stopping_) return;
      lock.unlock();
      run_tasks();
      lock.lock();
      if (--busy_workers_ == 0) done_.notify_one();
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int, int)> *task_ = nullptr;
  int task_count_ = 0;
  int busy_workers_ = 0;
  std::atomic<int> next_task_{0};
  std::atomic<bool> in_parallel_{false};
  uint64_t generation_ = 0;
  bool stopping_ = false;
};

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// The engine, the pool and its stream, created on first use; every execution holds `lock` (one convolution at a
// time uses the pool; MindSpore may call from several threads).
struct Runtime {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  ThreadPool pool{available_cores()};
  dnnl::stream stream = dnnl::threadpool_interop::make_stream(engine, &pool);
  std::mutex lock;
};

Runtime &runtime() {
  static Runtime instance;
  return instance;
}

// N, C, H, W, O, KH, KW, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right
using Key = std::array<int64_t, 13>;

// A plain-layout buffer seen through oneDNN's chosen layout: reordered into a cached buffer when they differ.
struct Operand {
  memory::desc plain, chosen;
  std::unique_ptr<memory> buffer;

  void init(const memory::desc &plain_desc, const memory::desc &chosen_desc, const dnnl::engine &engine) {
    plain = plain_desc;
    chosen = chosen_desc;
    if (plain != chosen) buffer.reset(new memory(chosen, engine));
  }
  // The memory the primitive reads: the user's data, reordered into the buffer when the layouts differ.
  memory input(void *data, Runtime &rt) const {
    memory user(plain, rt.engine, data);
    if (!buffer) return user;
    dnnl::reorder(user, *buffer).execute(rt.stream, user, *buffer);
    return *buffer;
  }
  // The memory the primitive writes; `finish` copies it into the user's data when the layouts differ.
  memory output(void *data, Runtime &rt) const {
    if (!buffer) return memory(plain, rt.engine, data);
    return *buffer;
  }
  void finish(void *data, Runtime &rt) const {
    if (!buffer) return;
    memory user(plain, rt.engine, data);
    dnnl::reorder(*buffer, user).execute(rt.stream, *buffer, user);
  }
};

struct Convolution {
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::primitive forward;
  Operand fwd_src, fwd_weights, fwd_dst;
  bool has_backward = false;
  dnnl::primitive backward_data;
  Operand bwd_diff_dst, bwd_weights, bwd_diff_src;
  dnnl::primitive backward_weights;
  Operand bww_src, bww_diff_dst, bww_diff_weights;
};

struct Plain {
  memory::desc src, weights, dst;
  memory::dims strides, pad_begin, pad_end;
};

Plain plain_descs(const Key &k) {
  const auto f32 = memory::data_type::f32;
  const int64_t out_h = (k[2] + k[9] + k[10] - k[5]) / k[7] + 1;
  const int64_t out_w = (k[3] + k[11] + k[12] - k[6]) / k[8] + 1;
  return {memory::desc({k[0], k[1], k[2], k[3]}, f32, memory::format_tag::nchw),
          memory::desc({k[4], k[1], k[5], k[6]}, f32, memory::format_tag::oihw),
          memory::desc({k[0], k[4], out_h, out_w}, f32, memory::format_tag::nchw),
          {k[7], k[8]}, {k[9], k[11]}, {k[10], k[12]}};
}

memory::desc any_layout(const memory::desc &desc) {
  return memory::desc(desc.dims(), memory::data_type::f32, memory::format_tag::any);
}

// The cached convolution of `key` (created on first use); `backward` also creates both gradient primitives.
Convolution &convolution(const Key &key, bool backward, Runtime &rt) {
  static std::map<Key, std::unique_ptr<Convolution>> cache;
  std::unique_ptr<Convolution> &entry = cache[key];
  const Plain p = plain_descs(key);
  const auto direct = dnnl::algorithm::convolution_direct;
  if (!entry) {
    entry.reset(new Convolution());
    dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, direct, any_layout(p.src),
                                         any_layout(p.weights), any_layout(p.dst), p.strides, p.pad_begin, p.pad_end);
    entry->forward_pd = dnnl::convolution_forward::primitive_desc(desc, rt.engine);
    entry->forward = dnnl::convolution_forward(entry->forward_pd);
    entry->fwd_src.init(p.src, entry->forward_pd.src_desc(), rt.engine);
    entry->fwd_weights.init(p.weights, entry->forward_pd.weights_desc(), rt.engine);
    entry->fwd_dst.init(p.dst, entry->forward_pd.dst_desc(), rt.engine);
  }
  if (backward && !entry->has_backward) {
    dnnl::convolution_backward_data::primitive_desc data_pd(
        dnnl::convolution_backward_data::desc(direct, any_layout(p.src), any_layout(p.weights), any_layout(p.dst),
                                              p.strides, p.pad_begin, p.pad_end),
        rt.engine, entry->forward_pd);
    entry->backward_data = dnnl::convolution_backward_data(data_pd);
    entry->bwd_diff_dst.init(p.dst, data_pd.diff_dst_desc(), rt.engine);
    entry->bwd_weights.init(p.weights, data_pd.weights_desc(), rt.engine);
    entry->bwd_diff_src.init(p.src, data_pd.diff_src_desc(), rt.engine);
    dnnl::convolution_backward_weights::primitive_desc weights_pd(
        dnnl::convolution_backward_weights::desc(direct, any_layout(p.src), any_layout(p.weights),
                                                 any_layout(p.dst), p.strides, p.pad_begin, p.pad_end),
        rt.engine, entry->forward_pd);
    entry->backward_weights = dnnl::convolution_backward_weights(weights_pd);
    entry->bww_src.init(p.src, weights_pd.src_desc(), rt.engine);
    entry->bww_diff_dst.init(p.dst, weights_pd.diff_dst_desc(), rt.engine);
    entry->bww_diff_weights.init(p.weights, weights_pd.diff_weights_desc(), rt.engine);
    entry->has_backward = true;
  }
  return *entry;
}

bool is_f32(const char *dtype) { return std::strcmp(dtype, "float32") == 0; }

// One entry point: which inputs hold x [N,C,H,W], weight [O,C,KH,KW] and y / dy [N,O,OH,OW] (the data or only the
// shape), the primitive it runs, and its two inputs and one output (params 0, 1 -> 4) with their oneDNN arguments.
struct Pass {
  const char *name;
  int x_index, weight_index, y_index;
  bool backward;
  dnnl::primitive Convolution::*primitive;
  Operand Convolution::*first, Convolution::*second, Convolution::*output;
  int first_arg, second_arg, output_arg;
};

// Checks the inputs (all float32; geometry [6] at index 2), finds or creates the convolution of their shapes and
// runs the pass on the pool.
int run_pass(const Pass &pass, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 5) return 1;
  for (int i = 0; i < 5; ++i) {
    if (!is_f32(dtypes[i])) return 1;
  }
  if (ndims[pass.x_index] != 4 || ndims[pass.weight_index] != 4 || ndims[pass.y_index] != 4) return 1;
  if (ndims[2] != 1 || shapes[2][0] != 6) return 1;
  const int64_t *x_shape = shapes[pass.x_index];
  const int64_t *w_shape = shapes[pass.weight_index];
  const float *geometry = static_cast<const float *>(params[2]);
  Key key = {x_shape[0], x_shape[1], x_shape[2], x_shape[3], w_shape[0], w_shape[2], w_shape[3]};
  for (int i = 0; i < 6; ++i) key[7 + i] = static_cast<int64_t>(geometry[i]);
  if (x_shape[1] != w_shape[1] || key[7] < 1 || key[8] < 1) return 1;
  for (int i = 9; i < 13; ++i) {
    if (key[i] < 0) return 1;
  }
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.lock);
  Convolution &conv = convolution(key, pass.backward, rt);
  const int64_t *y_shape = shapes[pass.y_index];
  if (conv.fwd_dst.plain.dims() != memory::dims(y_shape, y_shape + 4)) return 1;
  const Operand &output = conv.*pass.output;
  memory first = (conv.*pass.first).input(params[0], rt);
  memory second = (conv.*pass.second).input(params[1], rt);
  memory result = output.output(params[4], rt);
  (conv.*pass.primitive)
      .execute(rt.stream, {{pass.first_arg, first}, {pass.second_arg, second}, {pass.output_arg, result}});
  output.finish(params[4], rt);
  rt.stream.wait();
  return 0;
}

int guarded_pass(const Pass &pass, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  try {
    return run_pass(pass, nparam, params, ndims, shapes, dtypes);
  } catch (const dnnl::error &error) {
    std::fprintf(stderr, "%s: oneDNN error %d: %s\n", pass.name, static_cast<int>(error.status), error.what());
  } catch (const std::exception &error) {
    std::fprintf(stderr, "%s: %s\n", pass.name, error.what());
  }
  return 1;
}

const Pass kForward = {"Conv2dForward", 0, 1, 4, false, &Convolution::forward,
                       &Convolution::fwd_src, &Convolution::fwd_weights, &Convolution::fwd_dst,
                       DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
const Pass kBackwardData = {"Conv2dBackwardData", 3, 1, 0, true, &Convolution::backward_data,
                            &Convolution::bwd_diff_dst, &Convolution::bwd_weights, &Convolution::bwd_diff_src,
                            DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
const Pass kBackwardWeights = {"Conv2dBackwardWeights", 0, 3, 1, true, &Convolution::backward_weights,
                               &Convolution::bww_src, &Convolution::bww_diff_dst, &Convolution::bww_diff_weights,
                               DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS};

}  // namespace

extern "C" int Conv2dForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                             void *stream, void *extra) {
  (void)stream;
  (void)extra;
  return guarded_pass(kForward, nparam, params, ndims, shapes, dtypes);
}

extern "C" int Conv2dBackwardData(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                  void *stream, void *extra) {
  (void)stream;
  (void)extra;
  return guarded_pass(kBackwardData, nparam, params, ndims, shapes, dtypes);
}

extern "C" int Conv2dBackwardWeights(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                     void *stream, void *extra) {
  (void)stream;
  (void)extra;
  return guarded_pass(kBackwardWeights, nparam, params, ndims, shapes, dtypes);
}
