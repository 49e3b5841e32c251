// Quoting for SQL text that people read (a plan's preview) or that syncguard prints for them to
// run. Statements syncguard runs itself pass values as bind parameters instead.

/** "name", with embedded double quotes doubled. */
export function escapeIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** 'text', with quotes doubled; E'...' with doubled backslashes when the text holds a backslash. */
export function escapeLiteral(text: string): string {
  const quoted = text.replaceAll("'", "''");
  return text.includes('\\') ? ` E'${quoted.replaceAll('\\', '\\\\')}'`.trimStart() : `'${quoted}'`;
}
