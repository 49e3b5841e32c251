import { describe, expect, it } from 'vitest';
import { type ParityInfo, parityFindings } from '../../functions/core/parity.js';

const col = (name: string, type = 'text', generated = false) => ({ name, type, generated });
const info = (over: Partial<ParityInfo> = {}): ParityInfo => ({
  table: 'public.t',
  exists: true,
  hashedColumns: ['id', 'v'],
  columns: [col('id', 'bigint'), col('v')],
  published: true,
  keyColumn: 'id',
  maxKey: '100',
  sequences: [],
  ...over,
});

describe('parityFindings', () => {
  it('finds nothing for matching sides', () => {
    expect(parityFindings([info()], [info({ published: null })])).toEqual([]);
  });

  it('warns about type drift, missing columns and a table left out of the publication; notes extra subscriber columns', () => {
    const f = parityFindings(
      [info({ published: false, columns: [col('id', 'bigint'), col('v'), col('w', 'integer')] })],
      [info({ columns: [col('id', 'bigint'), col('v', 'character varying(10)'), col('extra')] })],
    );
    expect(f.map((x) => `${x.level}: ${x.message}`)).toEqual([
      "warning: the table is no longer in the subscription's publications",
      'warning: column v is text on the publisher and character varying(10) on the subscriber',
      'warning: column w exists on the publisher but not on the subscriber',
      'info: subscriber-only columns: extra',
    ]);
  });

  it('warns when a hashed column disappeared, and when a table is gone', () => {
    expect(parityFindings([info({ columns: [col('id', 'bigint')] })], [info({ columns: [col('id', 'bigint')] })])[0]?.message).toMatch(
      /hashed column v no longer exists on the publisher/,
    );
    expect(parityFindings([info()], [])[0]?.message).toBe('the table is not registered on the subscriber');
    expect(parityFindings([info({ exists: false })], [info()])[0]?.message).toBe('the table no longer exists on the publisher');
  });

  it("warns when the subscriber's key sequence is behind the replicated keys", () => {
    const behind = parityFindings([info()], [info({ sequences: [{ column: 'id', sequence: 'public.t_id_seq', lastValue: '1' }] })]);
    expect(behind[0]?.message).toMatch(/sequence public.t_id_seq on the subscriber is at 1, behind max\(id\) = 100/);
    const unused = parityFindings([info()], [info({ sequences: [{ column: 'id', sequence: 'public.t_id_seq', lastValue: null }] })]);
    expect(unused[0]?.message).toMatch(/is at its start/);
    expect(parityFindings([info()], [info({ sequences: [{ column: 'id', sequence: 's', lastValue: '100' }] })])).toEqual([]);
  });
});
