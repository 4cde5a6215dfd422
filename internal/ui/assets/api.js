// Requests to the relay, relative to the page (under .../ui/), so that
// they work through the API server's service proxy and palisadectl ui.

const TOKEN = 'palisade-token';
const HEADER = 'X-Palisade-Token';

// AuthError is a 401: the relay wants a token it accepts.
export class AuthError extends Error {}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN, t); else sessionStorage.removeItem(TOKEN);
}

function headers() {
  const t = sessionStorage.getItem(TOKEN);
  return t ? { [HEADER]: t } : {};
}

async function check(r) {
  if (r.status === 401) throw new AuthError((await r.text()).trim());
  if (!r.ok) {
    let msg = (await r.text()).trim();
    try { msg = JSON.parse(msg).error || msg; } catch { /* not JSON */ }
    const err = new Error(`${r.status} ${r.statusText}: ${msg}`);
    err.status = r.status;
    throw err;
  }
  return r;
}

export async function getJSON(path) {
  return (await check(await fetch('../' + path, { headers: headers() }))).json();
}

// stream reads the relay's JSON lines, one message at a time, until the
// response ends.
export async function stream(path, onMessage, signal) {
  const r = await check(await fetch('../' + path, { headers: headers(), signal }));
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim() !== '') onMessage(JSON.parse(line));
    }
  }
}
