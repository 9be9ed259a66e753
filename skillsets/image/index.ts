/**
 * Images as job inputs, shared by the image skillsets (`detr`,
 * `llava-next`): the wire form and its parsing (source.ts), limits
 * (limits.ts) and decoding in the inference thread (decode.ts).
 */
export type { ImageLimits } from './limits.ts'
export { DEFAULT_IMAGE_LIMITS, DEFAULT_INLINE_IMAGE_BYTES, IMAGE_LIMIT_CEILINGS, MAX_IMAGES_PER_JOB } from './limits.ts'
export type { ImageFormat, ImageInputs, ImageSource } from './source.ts'
export { checkImageBytes, inlineBytes, oneImageInputs, parseImageSource, sniffImageFormat } from './source.ts'
export type { RgbImage } from './decode.ts'
export { decodeImage } from './decode.ts'
