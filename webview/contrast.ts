/**
 * Text colour that stays readable on the heatmap's theme-derived cell colours (WCAG 2.x contrast,
 * AA = 4.5:1). Cell backgrounds mix the theme's red into its editor background, so no fixed text
 * colour works in every theme: each measured cell gets the theme's editor foreground or
 * background, whichever contrasts more, and black or white when neither reaches AA.
 */

/** An sRGB colour with alpha, channels 0…1. */
export interface Rgba {
  r: number;
  g: number;
  b: number;
  a: number;
}

/** WCAG AA contrast for normal text. */
export const AA = 4.5;

/**
 * Parses a computed CSS colour: `rgb()` / `rgba()` (0…255) or `color(srgb r g b [/ a])` (0…1),
 * which is how Chromium reports `color-mix()` results. Undefined for anything else.
 */
export function parseColor(s: string): Rgba | undefined {
  let m = /^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)$/.exec(s.trim());
  if (m) return { r: +m[1]! / 255, g: +m[2]! / 255, b: +m[3]! / 255, a: alpha(m[4]) };
  m = /^color\(srgb\s+([\d.e-]+)\s+([\d.e-]+)\s+([\d.e-]+)(?:\s*\/\s*([\d.]+%?))?\s*\)$/.exec(s.trim());
  if (m) return { r: +m[1]!, g: +m[2]!, b: +m[3]!, a: alpha(m[4]) };
  return undefined;
}

function alpha(s: string | undefined): number {
  if (s === undefined) return 1;
  return s.endsWith('%') ? parseFloat(s) / 100 : parseFloat(s);
}

/** `fg` composited over an opaque `bg`. */
export function over(fg: Rgba, bg: Rgba): Rgba {
  const a = fg.a;
  return { r: fg.r * a + bg.r * (1 - a), g: fg.g * a + bg.g * (1 - a), b: fg.b * a + bg.b * (1 - a), a: 1 };
}

/** Relative luminance (WCAG 2.x). */
export function luminance(c: Rgba): number {
  const lin = (v: number): number => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  return 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
}

/** Contrast ratio (1…21) of two opaque colours. */
export function contrast(a: Rgba, b: Rgba): number {
  const x = luminance(a);
  const y = luminance(b);
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
}

const BLACK: Rgba = { r: 0, g: 0, b: 0, a: 1 };
const WHITE: Rgba = { r: 1, g: 1, b: 1, a: 1 };

function css(c: Rgba): string {
  return `rgb(${Math.round(c.r * 255)}, ${Math.round(c.g * 255)}, ${Math.round(c.b * 255)})`;
}

/** The computed value of a colour expression, resolved by the browser on a probe element. */
function resolve(probe: HTMLElement, expr: string): Rgba | undefined {
  probe.style.color = expr;
  return parseColor(getComputedStyle(probe).color);
}

/**
 * Sets an inline text colour on every `cells` element whose background is known, so that its text
 * reaches {@link AA} against it. Call after rendering and when the theme changes.
 */
export function fitTextContrast(cells: ArrayLike<HTMLElement>, page: HTMLElement): void {
  const probe = document.createElement('span');
  probe.hidden = true;
  page.append(probe);
  try {
    const pageBg = parseColor(getComputedStyle(document.body).backgroundColor) ?? WHITE;
    const opaque = (c: Rgba | undefined): Rgba | undefined => (c ? over(c, pageBg) : undefined);
    const options = [opaque(resolve(probe, 'var(--vscode-editor-foreground)')), opaque(resolve(probe, 'var(--vscode-editor-background)'))].filter((c): c is Rgba => c !== undefined);
    for (const cell of Array.from(cells)) {
      cell.style.removeProperty('color');
      const style = getComputedStyle(cell);
      const bg = parseColor(style.backgroundColor);
      if (!bg) continue;
      const back = over(bg, pageBg);
      const own = parseColor(style.color);
      // The stylesheet's colour stays when it is readable (dimmer text for pending cells, say).
      if (own && contrast(over(own, back), back) >= AA) continue;
      const best = [...options].sort((x, y) => contrast(y, back) - contrast(x, back))[0];
      const pick = best && contrast(best, back) >= AA ? best : contrast(BLACK, back) >= contrast(WHITE, back) ? BLACK : WHITE;
      cell.style.color = css(pick);
    }
  } finally {
    probe.remove();
  }
}
