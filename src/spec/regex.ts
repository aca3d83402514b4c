import { RE2JS, RE2JSSyntaxException } from 're2js';
import { ValidationError } from '../errors';
import { MAX_REGEX_LENGTH } from './schema';

/**
 * User regexes (restore, freeze, lrMultipliers keys) run in the API and in the worker against
 * names taken from user-supplied checkpoints and topologies. They are compiled with RE2
 * semantics (re2js, a pure-JS port of RE2): matching is linear in the name whatever the
 * pattern, so a pattern like `(a+)+$` cannot stall the event loop. Both sides use this one
 * compiled form, so a name selected at submission is the name selected during training.
 */
export interface UserRegex {
  /** The pattern as the user wrote it. */
  readonly source: string;
  /** True if the pattern matches anywhere in `name` (JavaScript's RegExp#test semantics: unanchored). */
  test(name: string): boolean;
}

/**
 * Constructs a backtracking engine supports but RE2 cannot express, with what to write instead.
 * Checked only when RE2 refuses a pattern, to turn its parser message into advice.
 */
const UNSUPPORTED: { pattern: RegExp | ((source: string) => boolean); construct: string; instead: string }[] = [
  { pattern: /\(\?<[=!]/, construct: 'lookbehind `(?<=…)` / `(?<!…)`', instead: 'match the preceding text itself, e.g. `^enc_.*conv` instead of `(?<=enc_)conv`' },
  { pattern: /\(\?[=!]/, construct: 'lookahead `(?=…)` / `(?!…)`', instead: 'match the text itself, or list the wanted names with `|` (e.g. `^(enc|mid)_` instead of `^(?!dec_)`)' },
  { pattern: /\\[1-9]|\\k</, construct: 'backreference (`\\1`, `\\k<name>`)', instead: 'spell the repeated text out' },
  { pattern: /\(\?>/, construct: 'atomic group `(?>…)`', instead: 'use a plain group `(?:…)`: RE2 never backtracks, so it is not needed' },
  { pattern: /[*+?}]\+/, construct: 'possessive quantifier (`a++`, `a*+`)', instead: 'use the plain quantifier (`a+`): RE2 never backtracks, so it is not needed' },
  { pattern: /\\u[0-9A-Fa-f{]/, construct: 'escape `\\uXXXX`', instead: 'write `\\x{XXXX}`' },
  { pattern: /\\c[A-Za-z]/, construct: 'control escape `\\cX`', instead: 'write `\\x{..}` with the character code' },
  { pattern: hasRepeatAbove1000, construct: 'repetition count above 1000', instead: 'use `+` or `*`, or a count up to 1000' },
];

/** Compiled patterns by source: submissions reuse a handful of patterns, and compiling is most of a regex's cost. */
const COMPILED_CACHE_ENTRIES = 512;
const compiledCache = new Map<string, RE2JS>();

export function compileUserRegex(source: string, param: string): UserRegex {
  if (source.length > MAX_REGEX_LENGTH) {
    throw new ValidationError('invalid_regex', `The regular expression is longer than ${MAX_REGEX_LENGTH} characters.`, param);
  }
  let compiled = compiledCache.get(source);
  if (!compiled) {
    try {
      compiled = RE2JS.compile(source);
    } catch (err) {
      if (!(err instanceof RE2JSSyntaxException)) throw err;
      throw refusal(source, err, param);
    }
    // RE2JS objects are immutable and their matchers are per call, so one compiled form is shared.
    compiledCache.set(source, compiled);
    if (compiledCache.size > COMPILED_CACHE_ENTRIES) compiledCache.delete(compiledCache.keys().next().value!);
  }
  const re = compiled;
  return { source, test: (name) => re.test(name) };
}

/**
 * Why RE2 refused `source`: a construct it does not support (one a backtracking engine knows, or
 * any pattern JavaScript accepts: the user meant it), or a plain syntax error.
 */
function refusal(source: string, err: RE2JSSyntaxException, param: string): ValidationError {
  const reason = err.message.replace(/^error parsing regexp: /, '');
  const known = UNSUPPORTED.find((u) => (typeof u.pattern === 'function' ? u.pattern(source) : u.pattern.test(source)));
  if (known) {
    return new ValidationError('regex_unsupported', `${JSON.stringify(source)} cannot be used: it has a ${known.construct}, which graft's regex engine (RE2, linear-time) does not support; ${known.instead}.`, param);
  }
  if (isJavaScriptRegex(source)) {
    return new ValidationError('regex_unsupported', `${JSON.stringify(source)} cannot be used: RE2 (graft's linear-time regex engine) does not support it (${reason}); see https://github.com/google/re2/wiki/Syntax.`, param);
  }
  return new ValidationError('invalid_regex', `${JSON.stringify(source)} is not a valid regular expression: ${reason}.`, param);
}

function isJavaScriptRegex(source: string): boolean {
  try {
    // Only parsed, never run against input.
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

/** RE2 caps `{n,m}` counts at 1000 (the compiled program grows with the count). */
function hasRepeatAbove1000(source: string): boolean {
  return [...source.matchAll(/\{(\d+)(?:,(\d*))?\}/g)].some((m) => Number(m[1]) > 1000 || Number(m[2] || 0) > 1000);
}
