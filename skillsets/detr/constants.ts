/** Defaults and bounds of the detr skillset. */

/**
 * Detections scoring at or below this are dropped. 0.5 is the default of
 * the Python object-detection pipeline and of DetrImageProcessor's
 * post_process_object_detection; transformers.js's pipeline uses 0.9.
 */
export const DEFAULT_THRESHOLD = 0.5
/** At most this many detections per image, the best first (DETR-ResNet-50 has 100 queries). */
export const DEFAULT_TOP_K = 100
export const MAX_TOP_K = 1000
/**
 * Padded pixels (images × tallest × widest) in one inference call; a batch
 * over this is split into several calls, similar sizes together. Four
 * DETR-ResNet-50 inputs of 800×1333; hundreds of the generated model's.
 */
export const MAX_BATCH_PIXELS = 4 * 800 * 1333
/** Longest label accepted from the wire. */
export const MAX_LABEL_CHARS = 200
