/**
 * LLaVA-NeXT's "anyres" geometry, written from Hugging Face transformers'
 * reference (`image_processing_llava_next.py`, `image_processing_utils.py`,
 * `modeling_llava_next.py`, `processing_llava_next.py`), as pure functions
 * over sizes and feature arrays. Sizes are { height, width }, as the
 * reference orders them; `image_grid_pinpoints` entries are [height, width].
 *
 * Preprocessing: the best resolution among the pinpoints (largest effective
 * resolution, then least waste), an aspect-preserving resize to fit it
 * (`patchOutputSize`), centre padding to it (the odd pixel after), tiles of
 * the crop size in row-major order, and the whole image resized to the crop
 * size in front of them. Feature packing (`packImageFeatures`): the base
 * tile's features, then the tiles' features laid out as one grid of patch
 * features, trimmed of the rows or columns that only saw padding
 * (`unpaddedGrid`), with `image_newline` after each row.
 *
 * Not here: LLaVA-OneVision's extra step (an unpadded grid past
 * `max_num_patches` tiles' worth of features is downscaled by bilinear
 * interpolation before the newlines); see config.ts for what a OneVision
 * model gets.
 */

export interface Size { height: number, width: number }

/** What the geometry needs from a model's config and preprocessor config. */
export interface AnyresConfig {
  /** [height, width] resolutions the tiled image may take; each a multiple of tileSize. */
  gridPinpoints: ReadonlyArray<readonly [number, number]>
  /** Side of a tile and of the base image, in pixels (crop_size, vision_config.image_size). */
  tileSize: number
  /** Side of one vision patch, in pixels (vision_config.patch_size). */
  patchSize: number
}

/** Python's int() of a positive float: truncation. */
const trunc = Math.trunc

/**
 * Python's `int(round(x, 7))` for x ≥ 0: the reference rounds to 7 decimals
 * first so that 23.9999999996 counts as 24. Math.round(x·1e7)/1e7 rounds
 * half up where Python rounds the decimal value half-even; the two differ
 * only at an exact tie in the 8th decimal, which a ratio of image sides
 * does not reach.
 */
export const intRound7 = (x: number): number => trunc(Math.round(x * 1e7) / 1e7)

/** `select_best_resolution`: the pinpoint that keeps the most of the image's pixels, then wastes the fewest. */
export function selectBestResolution (original: Size, pinpoints: AnyresConfig['gridPinpoints']): Size {
  let best: Size | undefined
  let maxEffective = 0
  let minWasted = Infinity
  for (const [height, width] of pinpoints) {
    const scale = Math.min(width / original.width, height / original.height)
    const effective = Math.min(trunc(original.width * scale) * trunc(original.height * scale), original.width * original.height)
    const wasted = width * height - effective
    if (effective > maxEffective || (effective === maxEffective && wasted < minWasted)) {
      maxEffective = effective
      minWasted = wasted
      best = { height, width }
    }
  }
  if (best === undefined) throw new RangeError('selectBestResolution: no grid pinpoints')
  return best
}

/** `get_patch_output_size`: the image resized to fit `target`, aspect kept (the bound side exact, the other rounded up). */
export function patchOutputSize (original: Size, target: Size): Size {
  const scaleW = target.width / original.width
  const scaleH = target.height / original.height
  if (scaleW < scaleH) return { width: target.width, height: Math.min(Math.ceil(original.height * scaleW), target.height) }
  return { height: target.height, width: Math.min(Math.ceil(original.width * scaleH), target.width) }
}

/** `_pad_for_patching`: where the resized image sits in the target (padding before; the odd pixel goes after). */
export function padOffsets (resized: Size, target: Size): { top: number, left: number } {
  return { top: Math.floor((target.height - resized.height) / 2), left: Math.floor((target.width - resized.width) / 2) }
}

/** `get_anyres_image_grid_shape`: tiles down and across. */
export function gridShape (original: Size, config: AnyresConfig): { rows: number, cols: number } {
  const best = selectBestResolution(original, config.gridPinpoints)
  return { rows: Math.floor(best.height / config.tileSize), cols: Math.floor(best.width / config.tileSize) }
}

/** Patches per side of one tile. */
export const patchesPerSide = (config: AnyresConfig): number => Math.floor(config.tileSize / config.patchSize)

/**
 * `unpad_image` on the grid of patch features (current = rows·P × cols·P):
 * the rows (or columns) kept, as [start, end). The reference cuts
 * `padding = (current − new) // 2` from both ends, so an odd difference
 * keeps one more than `new`.
 */
export function unpaddedGrid (current: Size, original: Size): { top: number, bottom: number, left: number, right: number } {
  const originalAspect = original.width / original.height
  const currentAspect = current.width / current.height
  if (originalAspect > currentAspect) {
    const newHeight = intRound7(original.height * (current.width / original.width))
    const padding = Math.floor((current.height - newHeight) / 2)
    return { top: padding, bottom: current.height - padding, left: 0, right: current.width }
  }
  const newWidth = intRound7(original.width * (current.height / original.height))
  const padding = Math.floor((current.width - newWidth) / 2)
  return { top: 0, bottom: current.height, left: padding, right: current.width - padding }
}

export interface AnyresLayout {
  /** The resolution the image is tiled at. */
  best: Size
  rows: number
  cols: number
  /** Tiles the vision encoder sees: the base image, then rows × cols. */
  tiles: number
  /** Patch features per side of one tile. */
  side: number
  /** The kept part of the (rows·side) × (cols·side) feature grid. */
  kept: { top: number, bottom: number, left: number, right: number }
  /** Image tokens in the prompt: side² (base) + kept rows × (kept cols + 1 newline). */
  tokens: number
}

/** Everything about one image's tiling and packing, from its size alone. */
export function anyresLayout (original: Size, config: AnyresConfig): AnyresLayout {
  if (!(original.height >= 1 && original.width >= 1)) throw new RangeError(`anyres: image size ${original.width}×${original.height} has no pixels`)
  const best = selectBestResolution(original, config.gridPinpoints)
  const rows = Math.floor(best.height / config.tileSize)
  const cols = Math.floor(best.width / config.tileSize)
  const side = patchesPerSide(config)
  const kept = unpaddedGrid({ height: rows * side, width: cols * side }, original)
  const keptRows = kept.bottom - kept.top
  const keptCols = kept.right - kept.left
  return { best, rows, cols, tiles: 1 + rows * cols, side, kept, tokens: side * side + keptRows * (keptCols + 1) }
}

/** The number of image tokens an image of this size becomes (what `<image>` expands to). */
export const imageTokenCount = (original: Size, config: AnyresConfig): number => anyresLayout(original, config).tokens

/** The most image tokens any image can become: the largest grid kept whole. */
export function maxImageTokens (config: AnyresConfig): number {
  const side = patchesPerSide(config)
  let most = 0
  for (const [h, w] of config.gridPinpoints) {
    const rows = Math.floor(h / config.tileSize) * side
    const cols = Math.floor(w / config.tileSize) * side
    most = Math.max(most, rows * (cols + 1))
  }
  return side * side + most
}

/**
 * `pack_image_features` for one image: `features` holds the vision
 * encoder's output for its tiles, [tiles, side², hidden] (tile 0 the base
 * image, then the grid row by row; each tile's patches row by row), and
 * `newline` is [hidden]. Returns [tokens, hidden]: the base tile's side²
 * features, then for each kept row of the patch grid its kept columns and
 * one newline.
 */
export function packImageFeatures (features: Float32Array, layout: AnyresLayout, hidden: number, newline: Float32Array): Float32Array {
  const { side, cols, kept, tiles } = layout
  const perTile = side * side * hidden
  if (features.length !== tiles * perTile) throw new RangeError(`packImageFeatures: ${features.length} values for ${tiles} tiles of ${side}×${side}×${hidden}`)
  if (newline.length !== hidden) throw new RangeError(`packImageFeatures: image_newline has ${newline.length} values, the features ${hidden}`)
  const out = new Float32Array(layout.tokens * hidden)
  out.set(features.subarray(0, perTile), 0)
  let o = perTile
  for (let y = kept.top; y < kept.bottom; y++) {
    const tileRow = Math.floor(y / side)
    const py = y % side
    for (let x = kept.left; x < kept.right; x++) {
      const tile = 1 + tileRow * cols + Math.floor(x / side)
      const from = tile * perTile + (py * side + (x % side)) * hidden
      out.set(features.subarray(from, from + hidden), o)
      o += hidden
    }
    out.set(newline, o)
    o += hidden
  }
  return out
}
