// Max-IoU assignment of boxes to ground truths on CPU, as a MindSpore AOT custom-op entry point.
//
//   MaxIoUAssign inputs:  gt_boxes [B, G, 4] float32 (x1, y1, x2, y2), gt_valids [B, G] float32 (1 valid, 0 padding),
//                         boxes [B, N, 4] float32, box_valids [B, N] float32,
//                         settings [4] float32: pos_iou_thr, neg_iou_thr, min_pos_iou, match_low_quality (0 or 1)
//                         (a tensor: MindSpore 2.7.1's AOT attribute reader returns wrong values)
//                outputs: assigned [B, N] int32 (-1 ignored, 0 negative, k + 1 gt k), max_overlaps [B, N] float32
//
// The rule and the arithmetic are those of MaxIoUAssigner's op-by-op path (max_iou_assigner.py), so both give the
// same outputs bit for bit: IoU = intersection / max(gt_area + box_area - intersection, 1e-6), widths clamped at 0,
// 0 for a pair whose gt or box is invalid; each box takes the first gt of highest IoU; with match_low_quality each
// valid gt whose best IoU over the valid boxes reaches min_pos_iou also takes every valid box of exactly that IoU
// (the highest gt index wins a box claimed by several); invalid boxes are ignored. The op-by-op path materialises
// about fifteen [B, G, N] intermediates; this kernel keeps one [G, N] row block per image. Images run in parallel
// (OpenMP). Built without floating-point contraction (no FMA), so each IoU is rounded as the element-wise ops round it.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr float kIouEps = 1e-6f;

struct Settings {
  float pos_iou_thr, neg_iou_thr, min_pos_iou;
  bool match_low_quality;
};

// One image: gts [G, 4], boxes [N, 4] -> assigned [N], max_overlaps [N]; overlaps is scratch of G * N floats.
void assign_image(const float *gts, const float *gt_valids, int64_t num_gts, const float *boxes,
                  const float *box_valids, int64_t num_boxes, const Settings &settings, float *overlaps,
                  int32_t *assigned, float *max_overlaps) {
  for (int64_t g = 0; g < num_gts; ++g) {
    const float *gt = gts + 4 * g;
    const float gt_area = (gt[2] - gt[0]) * (gt[3] - gt[1]);
    float *row = overlaps + g * num_boxes;
    for (int64_t n = 0; n < num_boxes; ++n) {
      const float *box = boxes + 4 * n;
      const float width = std::max(std::min(gt[2], box[2]) - std::max(gt[0], box[0]), 0.0f);
      const float height = std::max(std::min(gt[3], box[3]) - std::max(gt[1], box[1]), 0.0f);
      const float intersection = width * height;
      const float box_area = (box[2] - box[0]) * (box[3] - box[1]);
      const float iou = intersection / std::max(gt_area + box_area - intersection, kIouEps);
      row[n] = (gt_valids[g] > 0.5f && box_valids[n] > 0.5f) ? iou : 0.0f;
    }
  }
  for (int64_t n = 0; n < num_boxes; ++n) {
    float best = overlaps[n];
    int32_t best_gt = 0;
    for (int64_t g = 1; g < num_gts; ++g) {
      const float value = overlaps[g * num_boxes + n];
      if (value > best) {
        best = value;
        best_gt = static_cast<int32_t>(g);
      }
    }
    max_overlaps[n] = best;
    assigned[n] = best >= settings.pos_iou_thr ? best_gt + 1 : (best < settings.neg_iou_thr ? 0 : -1);
  }
  if (settings.match_low_quality) {
    for (int64_t g = 0; g < num_gts; ++g) {
      if (!(gt_valids[g] > 0.5f)) continue;
      const float *row = overlaps + g * num_boxes;
      float gt_best = -1.0f;
      for (int64_t n = 0; n < num_boxes; ++n) {
        if (box_valids[n] > 0.5f) gt_best = std::max(gt_best, row[n]);
      }
      if (!(gt_best >= settings.min_pos_iou)) continue;
      for (int64_t n = 0; n < num_boxes; ++n) {
        if (box_valids[n] > 0.5f && row[n] == gt_best) assigned[n] = static_cast<int32_t>(g) + 1;
      }
    }
  }
  for (int64_t n = 0; n < num_boxes; ++n) {
    if (!(box_valids[n] > 0.5f)) assigned[n] = -1;
  }
}

bool is_float32(const char *dtype) { return std::strcmp(dtype, "float32") == 0; }

}  // namespace

extern "C" int MaxIoUAssign(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                            void *stream, void *extra) {
  (void)stream;
  (void)extra;
  if (nparam != 7) return 1;
  if (ndims[0] != 3 || shapes[0][2] != 4 || ndims[1] != 2 || ndims[2] != 3 || shapes[2][2] != 4 || ndims[3] != 2 ||
      ndims[4] != 1 || shapes[4][0] != 4) {
    return 1;
  }
  for (int i = 0; i < 5; ++i) {
    if (!is_float32(dtypes[i])) return 1;
  }
  if (std::strcmp(dtypes[5], "int32") != 0 || !is_float32(dtypes[6])) return 1;
  const int64_t batch = shapes[0][0];
  const int64_t num_gts = shapes[0][1];
  const int64_t num_boxes = shapes[2][1];
  if (shapes[1][0] != batch || shapes[1][1] != num_gts || shapes[2][0] != batch || shapes[3][0] != batch ||
      shapes[3][1] != num_boxes || num_gts < 1) {
    return 1;
  }
  const float *gts = static_cast<const float *>(params[0]);
  const float *gt_valids = static_cast<const float *>(params[1]);
  const float *boxes = static_cast<const float *>(params[2]);
  const float *box_valids = static_cast<const float *>(params[3]);
  const float *values = static_cast<const float *>(params[4]);
  const Settings settings{values[0], values[1], values[2], values[3] > 0.5f};
  int32_t *assigned = static_cast<int32_t *>(params[5]);
  float *max_overlaps = static_cast<float *>(params[6]);
#pragma omp parallel
  {
    std::vector<float> overlaps(static_cast<size_t>(num_gts * num_boxes));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      assign_image(gts + b * num_gts * 4, gt_valids + b * num_gts, num_gts, boxes + b * num_boxes * 4,
                   box_valids + b * num_boxes, num_boxes, settings, overlaps.data(), assigned + b * num_boxes,
                   max_overlaps + b * num_boxes);
    }
  }
  return 0;
}
