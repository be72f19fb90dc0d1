/**
 * The only module that imports `@vscode/webview-ui-toolkit` (archived upstream): the rest of the
 * panel creates controls through these factories, so a swap to another component set (or plain
 * elements) touches this file alone. Every factory returns a plain `HTMLElement` with the
 * attributes set; labels are set as text, never as markup.
 */
import {
  provideVSCodeDesignSystem,
  vsCodeBadge,
  vsCodeButton,
  vsCodeCheckbox,
  vsCodeDivider,
  vsCodeProgressRing,
  vsCodeTextField,
} from '@vscode/webview-ui-toolkit';

let registered = false;

/** Registers the custom elements once. */
export function registerToolkit(): void {
  if (registered) return;
  registered = true;
  provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeCheckbox(), vsCodeTextField(), vsCodeProgressRing(), vsCodeDivider(), vsCodeBadge());
}

/** A button; `appearance` `primary` (default) or `secondary`; `action` becomes `data-action` (for tests and styling). */
export function button(label: string, onClick: () => void, o: { appearance?: 'primary' | 'secondary'; title?: string; disabled?: boolean; action?: string } = {}): HTMLElement {
  const b = document.createElement('vscode-button');
  b.textContent = label;
  b.setAttribute('appearance', o.appearance ?? 'primary');
  if (o.title) {
    b.title = o.title;
    b.setAttribute('aria-label', o.title);
  }
  if (o.disabled) b.setAttribute('disabled', '');
  if (o.action) b.dataset['action'] = o.action;
  b.addEventListener('click', () => {
    if (!b.hasAttribute('disabled')) onClick();
  });
  return b;
}

/** A checkbox with a text label. */
export function checkbox(label: string, checked: boolean, onChange: (checked: boolean) => void): HTMLElement {
  const c = document.createElement('vscode-checkbox') as HTMLElement & { checked: boolean };
  c.textContent = label;
  c.checked = checked;
  if (checked) c.setAttribute('checked', '');
  c.addEventListener('change', () => onChange(c.checked));
  return c;
}

/** A one-line text field; `onInput` gets the value on every keystroke. */
export function textField(label: string, value: string, onInput: (value: string) => void, placeholder = ''): HTMLElement {
  const t = document.createElement('vscode-text-field') as HTMLElement & { value: string };
  t.textContent = label;
  t.setAttribute('placeholder', placeholder);
  t.setAttribute('aria-label', label || placeholder);
  t.value = value;
  t.setAttribute('value', value);
  t.addEventListener('input', () => onInput(t.value));
  return t;
}

/** An indeterminate progress ring. */
export function progressRing(): HTMLElement {
  const p = document.createElement('vscode-progress-ring');
  p.setAttribute('aria-label', 'Running');
  return p;
}

/** A horizontal rule. */
export function divider(): HTMLElement {
  return document.createElement('vscode-divider');
}

/** A small count badge. */
export function badge(text: string): HTMLElement {
  const b = document.createElement('vscode-badge');
  b.textContent = text;
  return b;
}
