/**
 * Shapes of the generated DETR-shaped detectors, and the Hugging Face
 * `config.json` and `preprocessor_config.json` (a DetrImageProcessor)
 * written next to them. The labels are COCO's 80 object classes, numbered
 * 0-79 without DETR's gaps; the graph's last logit is "no object".
 */

export type DetrSize = 'tiny' | 'bench'
export const DETR_SIZES: readonly DetrSize[] = Object.freeze(['tiny', 'bench'])

export interface DetrShape {
  /** Output channels of the backbone's 3×3 stride-2 convolutions (the stride is 2^length). */
  backboneChannels: readonly number[]
  /** Width of the projected features, the object queries and the heads. */
  dModel: number
  numHeads: number
  /** Decoder layers: cross-attention from the queries to the image features, then an FFN. */
  decoderLayers: number
  ffnDim: number
  numQueries: number
  layerNormEps: number
  /** DETR's sine position embedding: temperature and scale (2π). */
  positionTemperature: number
  /** Standard deviation of the random weights of the linear layers and queries. */
  initializerRange: number
  /** The image processor's resize target: shortest edge, capped by longest edge (Python DetrImageProcessor semantics). */
  shortestEdge: number
  longestEdge: number
}

/**
 * `tiny` is the demo and test model: stride 8 (three convolutions), width
 * 64, 20 queries, images resized to a shortest edge of 96 pixels (longest
 * 160), so a photograph runs in about a millisecond on a CPU core. Its
 * weights are larger than a trained DETR's so that attention is far from
 * uniform and a reference comparison has teeth.
 */
export const DETR_SHAPES: Readonly<Record<DetrSize, Readonly<DetrShape>>> = Object.freeze({
  tiny: Object.freeze({
    backboneChannels: Object.freeze([16, 32, 64]),
    dModel: 64,
    numHeads: 4,
    decoderLayers: 2,
    ffnDim: 128,
    numQueries: 20,
    layerNormEps: 1e-5,
    positionTemperature: 10000,
    initializerRange: 0.2,
    shortestEdge: 96,
    longestEdge: 160
  }),
  /**
   * `bench`: a detector with a real one's cost per image, for benchmarks of
   * the path around it (bench/images.ts): stride 32 (five convolutions up
   * to 256 channels, about 3.6 G multiply-adds at DETR's 800 × 1066), width
   * 256, 6 decoder layers, 100 queries, DETR's own resize (800, at most
   * 1333). Generated only when asked for.
   */
  bench: Object.freeze({
    backboneChannels: Object.freeze([32, 64, 128, 256, 256]),
    dModel: 256,
    numHeads: 8,
    decoderLayers: 6,
    ffnDim: 1024,
    numQueries: 100,
    layerNormEps: 1e-5,
    positionTemperature: 10000,
    initializerRange: 0.05,
    shortestEdge: 800,
    longestEdge: 1333
  })
})

/** COCO's 80 object classes, in the order of their category ids. */
export const COCO_LABELS: readonly string[] = Object.freeze([
  'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat', 'traffic light',
  'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
  'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee',
  'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
  'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
  'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed',
  'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven',
  'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush'
])

/** The ImageNet statistics DETR normalises with. */
export const IMAGENET_MEAN: readonly number[] = Object.freeze([0.485, 0.456, 0.406])
export const IMAGENET_STD: readonly number[] = Object.freeze([0.229, 0.224, 0.225])

export function detrParameterCount (s: Readonly<DetrShape>): number {
  let n = 0
  let cin = 3
  for (const c of s.backboneChannels) { n += cin * c * 9 + c; cin = c }
  const d = s.dModel
  n += cin * d + d // projection
  n += s.numQueries * d
  n += s.decoderLayers * (4 * (d * d + d) + 2 * 2 * d + d * s.ffnDim + s.ffnDim + s.ffnDim * d + d)
  n += d * (COCO_LABELS.length + 1) + COCO_LABELS.length + 1
  n += d * d + d + d * 4 + 4
  return n
}

/** The Hugging Face `config.json` of a generated detector (the keys transformers.js's AutoModelForObjectDetection reads). */
export function detrHfConfig (shape: Readonly<DetrShape>, size: DetrSize, seed: number): Record<string, unknown> {
  const id2label = Object.fromEntries(COCO_LABELS.map((l, i) => [String(i), l]))
  const label2id = Object.fromEntries(COCO_LABELS.map((l, i) => [l, i]))
  return {
    _name_or_path: `ipfs-accelerate/generated-detr-${size}`,
    architectures: ['DetrForObjectDetection'],
    model_type: 'detr',
    d_model: shape.dModel,
    decoder_attention_heads: shape.numHeads,
    decoder_ffn_dim: shape.ffnDim,
    decoder_layers: shape.decoderLayers,
    encoder_layers: 0,
    num_queries: shape.numQueries,
    num_labels: COCO_LABELS.length,
    position_embedding_type: 'sine',
    id2label,
    label2id,
    ipfs_accelerate: { generator: 'detr', size, seed, note: 'seeded RANDOM weights: the detections mean nothing' }
  }
}

/** `preprocessor_config.json`: a DetrImageProcessor with this shape's small resize target. */
export function detrPreprocessorConfig (shape: Readonly<DetrShape>): Record<string, unknown> {
  return {
    image_processor_type: 'DetrImageProcessor',
    do_resize: true,
    size: { shortest_edge: shape.shortestEdge, longest_edge: shape.longestEdge },
    resample: 2,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [...IMAGENET_MEAN],
    image_std: [...IMAGENET_STD],
    do_pad: true,
    do_convert_annotations: true,
    format: 'coco_detection'
  }
}
