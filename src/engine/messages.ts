// Words that come from pods (termination messages, waiting reasons) or from the API server and
// go into a status or an Event: pods run user code, so what they say is cleaned first.

/** Control characters other than tab and newline, which a status and a terminal show raw. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** `text` with control characters replaced by U+FFFD, trimmed and cut to `max` characters. */
export function sanitizeMessage(text: string, max = 1024): string {
  return text.replace(CONTROL, '\ufffd').trim().slice(0, max);
}
