// One way to read a yes/no setting (issue 17 item 19): every environment variable and config key
// that is a boolean is read by parseBoolean, so `true`, `1`, `yes` and `on` mean the same
// everywhere and a typo is refused instead of silently meaning "off".

import { InputError } from './errors.js';

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/** What a setting accepts, for error messages. */
export const BOOLEAN_HELP = 'must be true or false (also accepted: 1/0, yes/no, on/off, in any case)';

/** The boolean a text means, or undefined when it means none. */
export function booleanFrom(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  return TRUE.has(t) ? true : FALSE.has(t) ? false : undefined;
}

/** A boolean setting: unset or empty gives `fallback`; anything but the accepted words is refused, naming it. */
export function parseBoolean(name: string, value: string | boolean | undefined, fallback: boolean): boolean {
  if (typeof value === 'boolean') return value;
  if (value === undefined || value.trim() === '') return fallback;
  const b = booleanFrom(value);
  if (b === undefined) throw new InputError(`${name} ${BOOLEAN_HELP}, got ${JSON.stringify(value)}`);
  return b;
}
