/** User names for uids, as messages name the owner of a path. */
import fs from 'node:fs';

/** A user's name from /etc/passwd, else `uid N`. */
export function userOf(uid: number): string {
  return userNameOf(uid) ?? `uid ${uid}`;
}

/** A user's name from /etc/passwd; undefined when it has none there. */
export function userNameOf(uid: number): string | undefined {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id === String(uid)) return name;
    }
  } catch {
    // No passwd file to read: the number says it.
  }
  return undefined;
}
