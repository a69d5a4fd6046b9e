import { decodeImage, encodePng } from '../../generator/png.js';
import type { RgbImage } from '../../generator/render.js';

/**
 * The grid the webui puts first in `images` when a job makes more than one image
 * (`modules/images.py` `image_grid` with its defaults: `round(sqrt(n))` rows, as many columns
 * as it takes, empty cells black), as a base64 PNG carrying `infotext`.
 */
export function imageGrid(pngs: readonly string[], infotext: string): string {
  const images = pngs.map((png) => decodeImage(Buffer.from(png, 'base64')));
  const rows = Math.min(images.length, Math.max(1, Math.round(Math.sqrt(images.length))));
  const columns = Math.ceil(images.length / rows);
  const cellWidth = images[0]?.width ?? 0;
  const cellHeight = images[0]?.height ?? 0;
  const width = columns * cellWidth;
  const data = new Uint8Array(3 * width * rows * cellHeight);
  images.forEach((image, index) => {
    const left = (index % columns) * cellWidth;
    const top = Math.floor(index / columns) * cellHeight;
    for (let row = 0; row < Math.min(image.height, cellHeight); row++) {
      const from = 3 * row * image.width;
      data.set(image.data.subarray(from, from + 3 * Math.min(image.width, cellWidth)), 3 * ((top + row) * width + left));
    }
  });
  const grid: RgbImage = { width, height: rows * cellHeight, data };
  return Buffer.from(encodePng(grid, infotext)).toString('base64');
}
