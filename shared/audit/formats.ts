// The two file formats of an export. JSON: an array of event envelopes, as on the stream. CSV
// (RFC 4180, written by csv-stringify, never by hand): a header row, one column per envelope field,
// `data` as JSON text, CRLF line ends, and cells neutralised against formula injection.
import { stringify } from 'csv-stringify/sync';
import type { envelopeOf } from '../events/outbox';

export type Envelope = ReturnType<typeof envelopeOf>;

export const CSV_COLUMNS = ['id', 'type', 'occurred_at', 'user_id', 'actor_id', 'ip', 'user_agent', 'data'] as const;

// A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection").
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * Such a cell gets a leading single quote, which spreadsheets show as text. A value that already
 * starts with a quote gets one too, so the rule reverses exactly: drop one leading quote, if any.
 */
export function neutralise(value: string): string {
  return FORMULA_START.test(value) || value.startsWith("'") ? `'${value}` : value;
}

/** The value a neutralised cell stood for. */
export function unneutralise(cell: string): string {
  return cell.startsWith("'") ? cell.slice(1) : cell;
}

export function renderCsv(envelopes: Envelope[]): string {
  const records = envelopes.map((e) =>
    CSV_COLUMNS.map((column) => {
      const value = column === 'data' ? JSON.stringify(e.data) : e[column];
      return value === null ? '' : neutralise(String(value));
    }),
  );
  return stringify(records, { header: true, columns: [...CSV_COLUMNS], record_delimiter: 'windows' });
}

export function renderJson(envelopes: Envelope[]): string {
  return JSON.stringify(envelopes);
}
