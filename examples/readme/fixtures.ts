// Stand-ins for the application code the README's snippets call (a database, an API, a report builder).
export class FetchError extends Error {}
export interface User {
  id: number;
  name: string;
}
export const db = { users: { find: async (id: number): Promise<User> => ({ id, name: `user ${id}` }) } };
export const api = { weather: async (city: string) => `sunny in ${city}` };
export function buildReport(): string {
  return 'report';
}
export async function loadUser(id: number): Promise<User> {
  return db.users.find(id);
}
export async function runImport(options: { fencingToken: bigint; signal: AbortSignal }): Promise<void> {
  if (options.signal.aborted || options.fencingToken < 1n) throw new Error('lost the lock');
}
