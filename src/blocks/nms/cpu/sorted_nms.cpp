// Greedy NMS of boxes already sorted by decreasing score, on CPU, as a MindSpore AOT custom-op entry point.
//
//   SortedNmsKeep inputs:  boxes [G, N, 4] float32 (x1, y1, x2, y2), each of the G groups sorted by decreasing score
//                          and suppressed on its own; iou_threshold [1] float32 (a tensor: MindSpore 2.7.1's AOT
//                          attribute reader returns wrong values)
//                 output:  keep [G, N] float32, 1 for a kept box, 0 for a suppressed one
//
// A box is kept when no earlier kept box of its group overlaps it by IoU > iou_threshold, with the IoU computed as
// MindSpore's NMSWithMask does: intersection / (area_kept + area_box - intersection), areas (x2 - x1) * (y2 - y1),
// the kept (earlier) box first, so that equal inputs give the same float32 decisions (a NaN IoU never suppresses).
// Unlike NMSWithMask, which fills an N x N matrix of decisions, each box is compared with the boxes kept so far
// only (64 of them at a time in SIMD lanes, stopping at the first block with an overlap): the cost is at most about
// N x kept / 2 instead of N x N. Groups run in parallel (OpenMP). Built without floating-point contraction (no FMA),
// so each IoU is rounded as NMSWithMask rounds it.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr size_t kBlock = 64;  // kept boxes compared per vectorised block before checking for an overlap

// The kept boxes of a group as structure of arrays, so that one box is compared with a block of them in SIMD lanes.
struct KeptBoxes {
  std::vector<float> x1, y1, x2, y2, area;

  void reserve(size_t n) {
    for (std::vector<float> *column : {&x1, &y1, &x2, &y2, &area}) column->reserve(n);
  }
  void push(float bx1, float by1, float bx2, float by2, float barea) {
    x1.push_back(bx1);
    y1.push_back(by1);
    x2.push_back(bx2);
    y2.push_back(by2);
    area.push_back(barea);
  }
  size_t size() const { return x1.size(); }
};

// Whether any kept box in [begin, end) overlaps the box by IoU > threshold (kept box first in the area sum).
inline bool any_overlap(const KeptBoxes &kept, size_t begin, size_t end, float bx1, float by1, float bx2, float by2,
                        float barea, float threshold) {
  int hits = 0;
  for (size_t k = begin; k < end; ++k) {
    const float width = std::max(std::min(kept.x2[k], bx2) - std::max(kept.x1[k], bx1), 0.0f);
    const float height = std::max(std::min(kept.y2[k], by2) - std::max(kept.y1[k], by1), 0.0f);
    const float intersection = width * height;
    const float combined = kept.area[k] + barea;
    hits |= (intersection / (combined - intersection) > threshold) ? 1 : 0;
  }
  return hits != 0;
}

void suppress_group(const float *boxes, int64_t num_boxes, float threshold, float *keep) {
  KeptBoxes kept;
  kept.reserve(static_cast<size_t>(num_boxes));
  for (int64_t i = 0; i < num_boxes; ++i) {
    const float *b = boxes + 4 * i;
    const float area = (b[2] - b[0]) * (b[3] - b[1]);
    bool suppressed = false;
    for (size_t begin = 0; begin < kept.size() && !suppressed; begin += kBlock) {
      const size_t end = std::min(begin + kBlock, kept.size());
      suppressed = any_overlap(kept, begin, end, b[0], b[1], b[2], b[3], area, threshold);
    }
    keep[i] = suppressed ? 0.0f : 1.0f;
    if (!suppressed) kept.push(b[0], b[1], b[2], b[3], area);
  }
}

}  // namespace

extern "C" int SortedNmsKeep(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                             void *stream, void *extra) {
  (void)stream;
  (void)extra;
  if (nparam != 3 || ndims[0] != 3 || shapes[0][2] != 4 || std::strcmp(dtypes[0], "float32") != 0) return 1;
  if (ndims[1] != 1 || shapes[1][0] != 1 || std::strcmp(dtypes[1], "float32") != 0) return 1;
  if (ndims[2] != 2 || shapes[2][0] != shapes[0][0] || shapes[2][1] != shapes[0][1]) return 1;
  const int64_t groups = shapes[0][0];
  const int64_t num_boxes = shapes[0][1];
  const float *boxes = static_cast<const float *>(params[0]);
  const float threshold = static_cast<const float *>(params[1])[0];
  float *keep = static_cast<float *>(params[2]);
#pragma omp parallel for schedule(dynamic)
  for (int64_t g = 0; g < groups; ++g) {
    suppress_group(boxes + g * num_boxes * 4, num_boxes, threshold, keep + g * num_boxes);
  }
  return 0;
}
