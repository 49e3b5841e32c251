// The shape of syncguard.describe_table() (sql/node/0004_registration.sql), as the core sees it.

export interface ColumnInfo {
  readonly name: string;
  /** format_type() of the column, e.g. `numeric(10,2)`, `timestamp with time zone`. */
  readonly type: string;
  /** format_type() of the base type (domains resolved, no typmod), e.g. `numeric`. */
  readonly baseType: string;
  readonly collation: string | null;
  readonly generated: boolean;
  readonly notNull: boolean;
}

export interface PublicationInfo {
  readonly published: boolean;
  /** Published columns, or null when the publications publish every column. */
  readonly columns: readonly string[] | null;
  readonly rowFilter: string | null;
}

export interface TableInfo {
  readonly schema: string;
  readonly table: string;
  readonly relkind: string;
  /** none, or partitioned / partition / child / parent (syncguard._inheritance); absent before schema 11. */
  readonly inheritance?: 'none' | 'partitioned' | 'partition' | 'child' | 'parent';
  readonly key: { readonly kind: 'primary' | 'unique'; readonly columns: readonly string[] } | null;
  readonly columns: readonly ColumnInfo[];
  readonly publication: PublicationInfo | null;
}
