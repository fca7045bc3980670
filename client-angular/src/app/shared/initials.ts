/** "Ada Lovelace" → "AL"; used for avatars when the camera is off. */
export function initials(name: string | undefined | null): string {
  const parts = (name ?? '').trim().split(/\s+/).filter(Boolean);
  if (parts.length === 0) return '?';
  const first = parts[0][0] ?? '';
  const last = parts.length > 1 ? (parts[parts.length - 1][0] ?? '') : '';
  return (first + last).toUpperCase();
}

const COLORS = ['#7b1fa2', '#1967d2', '#188038', '#c5221f', '#e37400', '#00796b', '#5e35b1', '#ad1457'];
export function avatarColor(seed: number | string): string {
  const s = String(seed);
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return COLORS[h % COLORS.length];
}

/** Pulls a meeting code out of whatever the user pasted: a code or a full link. */
export function parseMeetingCode(input: string): string | null {
  const m = input.trim().toLowerCase().match(/([a-z0-9]{3,4}-[a-z0-9]{3,4}-[a-z0-9]{3,4})(?:[/?#].*)?$/);
  return m ? m[1] : null;
}
